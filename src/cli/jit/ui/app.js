// kubectl jit ui: countdowns, a gentle refresh, and the request form's scope preview.
// Served as a file: the page's Content-Security-Policy allows no inline script.
'use strict';

// "1h 02m 05s", "4m 10s", "9s", as the server renders them.
function left(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor(total / 60) % 60;
  const s = total % 60;
  const two = (n) => String(n).padStart(2, '0');
  if (h > 0) return `${h}h ${two(m)}m ${two(s)}s`;
  if (m > 0) return `${m}m ${two(s)}s`;
  return `${s}s`;
}

function tick() {
  for (const el of document.querySelectorAll('.countdown[data-expires]')) {
    const ms = Date.parse(el.dataset.expires) - Date.now();
    el.textContent = ms > 0 ? `${left(ms)} left` : 'ended';
    el.classList.toggle('ending', ms > 0 && ms < 5 * 60 * 1000);
  }
}

// Reload now and then to show new requests and decisions, unless the person is typing
// or has typed something not yet sent.
function typing() {
  const active = document.activeElement;
  if (active && ['INPUT', 'TEXTAREA', 'SELECT'].includes(active.tagName)) return true;
  for (const el of document.querySelectorAll('input:not([type=hidden]), textarea')) {
    if (el.type === 'checkbox' ? el.checked !== el.defaultChecked : el.value !== el.defaultValue) {
      return true;
    }
  }
  return false;
}

function preview(form) {
  const list = (name) => (form.elements[name].value || '').split(/[\s,]+/).filter(Boolean);
  const ops = [...form.querySelectorAll('input[name=operation]:checked')].map((el) => el.value);
  const group = form.elements.apiGroup.value.trim() || 'core';
  let text = `${ops.length ? ops.join(',') : '*'} ${list('resource').join(',')} (${group})`;
  if (list('namespace').length) text += ` in ${list('namespace').join(',')}`;
  if (list('names').length) text += ` named ${list('names').join(',')}`;
  document.getElementById('scope-preview').textContent = text;
}

document.addEventListener('DOMContentLoaded', () => {
  tick();
  setInterval(tick, 1000);
  const form = document.getElementById('request');
  if (form) {
    form.addEventListener('input', () => preview(form));
    form.addEventListener('change', () => preview(form));
    return;
  }
  const every = Number(document.body.dataset.refresh || 0);
  if (every > 0) {
    setInterval(() => {
      if (!typing()) location.reload();
    }, every * 1000);
  }
});
