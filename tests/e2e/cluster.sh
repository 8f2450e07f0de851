#!/usr/bin/env bash
# A real Kubernetes control plane on loopback with jitguard in front of it: the playground
# for trying jitguard on one machine, and the cluster the e2e tests (tests/e2e) run in.
#
#   bash tests/e2e/cluster.sh up       # build what is missing, start, register jitguard
#   bash tests/e2e/cluster.sh status   # what runs where
#   bash tests/e2e/cluster.sh down     # stop exactly what `up` started
#
# `up` starts etcd, kube-apiserver and kube-controller-manager (built from their Go modules
# by controlplane/build.sh), then jitguard out of cluster, and writes a kubeconfig with a
# context per user (target/e2e/kubeconfig). What the shipped manifests say is applied as
# it is, but for the changes that serving from outside the cluster needs (see
# install_jitguard below).
#
# Settings, all optional (the e2e tests use them to run several clusters side by side):
#   JITGUARD_E2E_DIR        state folder [target/e2e]: run/ (pids, logs, certs), kubeconfig
#   JITGUARD_BIN            the jitguard binary [cargo build --release, target/release/jitguard]
#   JITGUARD_E2E_POLICIES   policy folder jitguard serves [policies]
#   JITGUARD_E2E_SERVE_ARGS extra `jitguard serve` flags (word-split)
#   JITGUARD_E2E_OWNER_PID  stop the cluster by itself once this process is gone
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
dir="${JITGUARD_E2E_DIR:-$root/target/e2e}"
run="$dir/run"
kubeconfig="$dir/kubeconfig"
users=(admin alice bob sam carol)

say() { printf 'cluster.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# --- processes -------------------------------------------------------------------------

# `name pid` lines, in start order; `down` stops them in reverse.
pids_file="$run/pids"

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

running_pids() {
  [ -f "$pids_file" ] || return 0
  while read -r name pid; do
    if alive "$pid"; then echo "$name $pid"; fi
  done <"$pids_file"
}

# start NAME CMD...: in its own session (so a terminal's Ctrl-C does not reach it), its
# output in run/logs/NAME.log.
start() {
  local name="$1"; shift
  mkdir -p "$run/logs"
  setsid "$@" >>"$run/logs/$name.log" 2>&1 </dev/null &
  echo "$name $!" >>"$pids_file"
}

stop_all() {
  [ -f "$pids_file" ] || return 0
  local lines name pid
  # Reverse order: jitguard first, etcd last, so nothing logs errors about a peer gone.
  mapfile -t lines < <(tac "$pids_file")
  for line in "${lines[@]}"; do
    read -r name pid <<<"$line"
    # The watchdog runs `down` itself, as the same process.
    [ "$pid" = "$$" ] && continue
    if alive "$pid"; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do alive "$pid" || break; sleep 0.1; done
      if alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        say "killed $name (pid $pid): still running 10 s after SIGTERM"
      else
        say "stopped $name (pid $pid)"
      fi
    fi
  done
  rm -f "$pids_file"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_for NAME SECONDS CMD...: poll until CMD succeeds; fail with the last lines of
# NAME's log when the time is up or the process NAME has exited.
wait_for() {
  local name="$1" seconds="$2"; shift 2
  local log="$run/logs/$name.log" pid
  pid="$(awk -v n="$name" '$1 == n { p = $2 } END { print p }' "$pids_file")"
  local deadline=$(( $(date +%s) + seconds ))
  until "$@" >/dev/null 2>&1; do
    if ! alive "$pid"; then
      say "$name exited while starting; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      say "$name did not come up within ${seconds}s; last lines of $log:"
      tail -n 30 "$log" >&2 || true
      return 1
    fi
    sleep 0.3
  done
}

kubectl_admin() { "$bin/kubectl" --kubeconfig "$kubeconfig" --context admin "$@"; }

# --- up --------------------------------------------------------------------------------

up() {
  if [ -n "$(running_pids)" ]; then
    say "already up (state in $run); run 'bash tests/e2e/cluster.sh down' first:"
    running_pids >&2
    exit 1
  fi
  command -v python3 >/dev/null || die "python3 is needed (to pick free ports)"
  command -v openssl >/dev/null || die "openssl is needed (the service-account signing key); apt-get install openssl"
  command -v curl >/dev/null || die "curl is needed (readiness checks); apt-get install curl"

  bin="$(bash "$here/controlplane/build.sh")"
  local jitguard="${JITGUARD_BIN:-}"
  if [ -z "$jitguard" ]; then
    say "building jitguard (cargo build --release)"
    (cd "$root" && cargo build --release --quiet --bin jitguard)
    jitguard="$root/target/release/jitguard"
  fi
  [ -x "$jitguard" ] || die "no jitguard binary at $jitguard"

  rm -rf "$run"
  mkdir -p "$run/pki" "$run/logs"
  local etcd_port etcd_peer api_port hook_port ops_port
  etcd_port="$(free_port)"; etcd_peer="$(free_port)"; api_port="$(free_port)"
  hook_port="$(free_port)"; ops_port="$(free_port)"
  local api="https://127.0.0.1:$api_port"

  # Certificates: the API server's serving pair and CA, jitguard's serving pair (its CA
  # becomes the webhooks' caBundle), and the service-account token signing key.
  "$jitguard" certs --out "$run/pki/apiserver" --dns 127.0.0.1 --dns localhost \
    --dns kubernetes.default.svc >/dev/null
  # ... and a client certificate from the same CA for the API server: jitguard answers
  # only callers that present one (--client-ca), so a review cannot be forged by anyone
  # who merely reaches its port.
  "$jitguard" certs --out "$run/pki/jitguard" --dns 127.0.0.1 --dns localhost \
    --client kube-apiserver >/dev/null
  openssl genrsa -out "$run/pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$run/pki/sa.key" -pubout -out "$run/pki/sa.pub" 2>/dev/null

  # Users: static bearer tokens (--token-auth-file), one per person, with their groups.
  : >"$run/tokens.csv"
  local user groups token
  for user in "${users[@]}" kube-controller-manager; do
    case "$user" in
      admin) groups="system:masters" ;;
      alice) groups="developers" ;;
      bob) groups="team-leads" ;;
      sam) groups="security" ;;
      carol) groups="sre-oncall" ;;
      kube-controller-manager) groups="" ;;
    esac
    token="$(openssl rand -hex 24)"
    local name="$user"
    [ "$user" = kube-controller-manager ] && name="system:kube-controller-manager"
    echo "$token,$name,uid-$user,\"$groups\"" >>"$run/tokens.csv"
    echo "$token" >"$run/token-$user"
  done
  chmod 600 "$run"/token-* "$run/tokens.csv"

  write_kubeconfig "$api"
  write_admission_config "$hook_port"

  start etcd "$bin/etcd" --name e2e --data-dir "$run/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "e2e=http://127.0.0.1:$etcd_peer" --unsafe-no-fsync --log-level warn
  wait_for etcd 60 curl -fsS "http://127.0.0.1:$etcd_port/health"

  # --endpoint-reconciler-type none: the `kubernetes` Service's endpoint would be this
  # loopback address, which the API server refuses to publish.
  start kube-apiserver "$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --secure-port "$api_port" --advertise-address 127.0.0.1 \
    --endpoint-reconciler-type none \
    --tls-cert-file "$run/pki/apiserver/tls.crt" --tls-private-key-file "$run/pki/apiserver/tls.key" \
    --client-ca-file "$run/pki/apiserver/ca.pem" \
    --token-auth-file "$run/tokens.csv" \
    --authorization-mode Node,RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$run/pki/sa.pub" \
    --service-account-signing-key-file "$run/pki/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --allow-privileged=true \
    --admission-control-config-file "$run/admission.yaml" \
    --cert-dir "$run/pki/apiserver-generated" \
    --profiling=false
  wait_for kube-apiserver 180 \
    curl -fsS --cacert "$run/pki/apiserver/ca.pem" -H "Authorization: Bearer $(cat "$run/token-admin")" "$api/readyz"

  write_component_kubeconfig "$api" kube-controller-manager "$run/kube-controller-manager.kubeconfig"
  # Only what a cluster without nodes needs for real: the aggregation that fills the
  # built-in admin/edit/view roles, default ServiceAccounts, garbage collection
  # (ownerReferences) and namespace deletion. Each controller uses its own service account,
  # as kubeadm sets it up.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig "$run/kube-controller-manager.kubeconfig" \
    --controllers clusterrole-aggregation-controller,serviceaccount-controller,garbage-collector-controller,namespace-controller \
    --use-service-account-credentials=true --leader-elect=false \
    --root-ca-file "$run/pki/apiserver/ca.pem" --secure-port 0
  # Ready when the built-in edit role has its rules.
  wait_for kube-controller-manager 120 \
    sh -c "'$bin/kubectl' --kubeconfig '$kubeconfig' --context admin get clusterrole edit -o jsonpath='{.rules[*].verbs}' | grep -q create"

  seed_cluster
  install_jitguard "$jitguard" "$api" "$hook_port" "$ops_port"

  if [ -n "${JITGUARD_E2E_OWNER_PID:-}" ]; then
    # The tests' safety net: when the test process is gone (even killed), so is its cluster.
    start watchdog bash -c "while kill -0 $JITGUARD_E2E_OWNER_PID 2>/dev/null; do sleep 1; done; exec bash '$here/cluster.sh' down"
  fi

  cat >"$run/env" <<EOF
APISERVER=$api
ETCD=http://127.0.0.1:$etcd_port
JITGUARD_WEBHOOK=https://127.0.0.1:$hook_port
JITGUARD_METRICS=http://127.0.0.1:$ops_port
KUBECONFIG_USERS=$kubeconfig
JITGUARD_KUBECONFIG=$run/jitguard.kubeconfig
JITGUARD_AUDIT=$run/audit.jsonl
BIN=$bin
JITGUARD_BIN=$jitguard
EOF
  # kubectl finds `kubectl jit` as the plugin kubectl-jit on the PATH.
  mkdir -p "$run/bin"
  ln -sf "$jitguard" "$run/bin/kubectl-jit"
  ln -sf "$jitguard" "$run/bin/jitguard"
  status
  cat <<EOF

Try it, as any of: ${users[*]} (one kubeconfig context each)
  export KUBECONFIG=$kubeconfig PATH=$bin:$run/bin:\$PATH
  kubectl --context alice -n prod scale deploy web --replicas=0     # denied: needs a grant
  kubectl jit --context alice request --namespace prod --api-group apps \\
      --resource deployments/scale --operation UPDATE --name web \\
      --duration 30m --reason "scale down for INC-1" --ticket INC-1
  kubectl jit --context bob list --pending
  kubectl jit --context bob approve NAME && kubectl jit --context sam approve NAME
Logs: $run/logs; audit records: $run/audit.jsonl; stop: bash tests/e2e/cluster.sh down
EOF
}

write_kubeconfig() {
  local api="$1" user
  {
    cat <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: e2e
    cluster:
      server: $api
      certificate-authority: $run/pki/apiserver/ca.pem
users:
EOF
    for user in "${users[@]}"; do
      printf '  - name: %s\n    user:\n      token: %s\n' "$user" "$(cat "$run/token-$user")"
    done
    echo "contexts:"
    for user in "${users[@]}"; do
      printf '  - name: %s\n    context: {cluster: e2e, user: %s, namespace: default}\n' "$user" "$user"
    done
    echo "current-context: admin"
  } >"$kubeconfig"
  chmod 600 "$kubeconfig"
}

# The API server's side of mTLS to the webhooks: which client certificate it presents to
# which webhook host (the user's name is the webhook URL's host:port).
write_admission_config() {
  cat >"$run/webhook-client.kubeconfig" <<EOF
apiVersion: v1
kind: Config
users:
  - name: "127.0.0.1:$1"
    user:
      client-certificate: $run/pki/jitguard/kube-apiserver.crt
      client-key: $run/pki/jitguard/kube-apiserver.key
EOF
  local plugin
  {
    echo "apiVersion: apiserver.config.k8s.io/v1"
    echo "kind: AdmissionConfiguration"
    echo "plugins:"
    for plugin in ValidatingAdmissionWebhook MutatingAdmissionWebhook; do
      cat <<EOF
  - name: $plugin
    configuration:
      apiVersion: apiserver.config.k8s.io/v1
      kind: WebhookAdmissionConfiguration
      kubeConfigFile: $run/webhook-client.kubeconfig
EOF
    done
  } >"$run/admission.yaml"
}

# write_component_kubeconfig API USER FILE: a kubeconfig for one token of tokens.csv.
write_component_kubeconfig() {
  cat >"$3" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: $1, certificate-authority: $run/pki/apiserver/ca.pem}}]
users: [{name: $2, user: {token: $(cat "$run/token-$2")}}]
contexts: [{name: $2, context: {cluster: e2e, user: $2}}]
current-context: $2
EOF
  chmod 600 "$3"
}

# The namespaces and objects the scenarios use, made before jitguard is registered (as a
# cluster that installs jitguard later has them), and the users' RBAC.
seed_cluster() {
  kubectl_admin apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: dev}
---
apiVersion: v1
kind: Namespace
metadata: {name: staging}
---
apiVersion: v1
kind: Namespace
metadata: {name: prod}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: deployer, namespace: prod}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: prod}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.k8s.io/pause:3.10}]
---
# No scheduler runs: this pod stays Pending, which is enough for the API server to call
# the webhooks on exec, attach, port-forward, ephemeral containers and eviction.
apiVersion: v1
kind: Pod
metadata: {name: web-0, namespace: prod, labels: {app: web}}
spec:
  containers: [{name: web, image: registry.k8s.io/pause:3.10}]
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: prod}
spec:
  selector: {app: web}
  ports: [{port: 80}]
EOF
  # The people hold the built-in edit role in every application namespace, so that what
  # stops them in prod is jitguard, not RBAC.
  local ns user
  for ns in dev staging prod; do
    for user in alice bob sam carol; do
      kubectl_admin -n "$ns" create rolebinding "edit-$user" --clusterrole edit --user "$user" >/dev/null
    done
  done
}

# jitguard as the shipped manifests install it, with these changes for running outside
# the cluster (written to run/install and run/webhooks as kustomize overlays of the base),
# plus manifests/extras/events-reader:
# - no Deployment and no Service: jitguard runs here as a process, not as pods;
# - the webhooks' clientConfig: `url: https://127.0.0.1:PORT/validate|mutate` instead of
#   the Service, and the caBundle of the certificate made above;
# - the webhooks are registered last, once jitguard answers, as a rollout would.
install_jitguard() {
  local jitguard="$1" api="$2" hook_port="$3" ops_port="$4"
  local base ca_bundle
  base="$(realpath --relative-to="$run/install" "$root/manifests/base")"
  mkdir -p "$run/install" "$run/webhooks"
  cat >"$run/install/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [$base]
patches:
  - patch: '{"\$patch": "delete", "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "jitguard", "namespace": "jitguard"}}'
  - patch: '{"\$patch": "delete", "apiVersion": "v1", "kind": "Service", "metadata": {"name": "jitguard", "namespace": "jitguard"}}'
  - patch: '{"\$patch": "delete", "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration", "metadata": {"name": "jitguard"}}'
  - patch: '{"\$patch": "delete", "apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingWebhookConfiguration", "metadata": {"name": "jitguard"}}'
EOF
  kubectl_admin apply -k "$run/install" >/dev/null
  # The optional extra the page's history reads Events with, as an operator adds it.
  kubectl_admin apply -k "$root/manifests/extras/events-reader" >/dev/null
  kubectl_admin wait --for condition=Established crd/accessrequests.jitguard.dev --timeout 60s >/dev/null

  # jitguard's identity: a token of its ServiceAccount, as a pod would mount it.
  local sa_token
  sa_token="$(kubectl_admin -n jitguard create token jitguard --duration 48h)"
  cat >"$run/jitguard.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters: [{name: e2e, cluster: {server: $api, certificate-authority: $run/pki/apiserver/ca.pem}}]
users: [{name: jitguard, user: {token: $sa_token}}]
contexts: [{name: jitguard, context: {cluster: e2e, user: jitguard, namespace: jitguard}}]
current-context: jitguard
EOF
  chmod 600 "$run/jitguard.kubeconfig"

  local policies="${JITGUARD_E2E_POLICIES:-$root/policies}"
  # shellcheck disable=SC2086 # JITGUARD_E2E_SERVE_ARGS is a list of flags
  KUBECONFIG="$run/jitguard.kubeconfig" start jitguard "$jitguard" serve \
    --addr "127.0.0.1:$hook_port" --metrics-addr "127.0.0.1:$ops_port" \
    --policies "$policies" \
    --tls-cert "$run/pki/jitguard/tls.crt" --tls-key "$run/pki/jitguard/tls.key" \
    --client-ca "$run/pki/jitguard/ca.pem" \
    --namespace jitguard --service-account jitguard --pod-name jitguard-0 \
    --audit-file "$run/audit.jsonl" --shutdown-delay 1s --drain-timeout 5s \
    ${JITGUARD_E2E_SERVE_ARGS:-}
  wait_for jitguard 120 curl -fsS "http://127.0.0.1:$ops_port/readyz"

  ca_bundle="$(base64 -w0 "$run/pki/jitguard/ca.pem")"
  base="$(realpath --relative-to="$run/webhooks" "$root/manifests/base")"
  # kustomize loads files only from below an overlay: copy the one file this overlay uses.
  cp "$root/manifests/base/webhooks.yaml" "$run/webhooks/webhooks.yaml"
  local url="https://127.0.0.1:$hook_port"
  {
    cat <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
# A copy of $base/webhooks.yaml, unchanged but for clientConfig below.
resources: [webhooks.yaml]
patches:
EOF
    local kind path
    for kind in ValidatingWebhookConfiguration MutatingWebhookConfiguration; do
      path=/validate; [ "$kind" = MutatingWebhookConfiguration ] && path=/mutate
      cat <<EOF
  - target: {kind: $kind, name: jitguard}
    patch: |-
      - {op: replace, path: /webhooks/0/clientConfig, value: {url: "$url$path", caBundle: "$ca_bundle"}}
      - {op: replace, path: /webhooks/1/clientConfig, value: {url: "$url$path", caBundle: "$ca_bundle"}}
EOF
    done
  } >"$run/webhooks/kustomization.yaml"
  kubectl_admin apply -k "$run/webhooks" >/dev/null
}

# --- status and down -------------------------------------------------------------------

status() {
  if [ ! -f "$pids_file" ]; then
    echo "down (no cluster started from $dir)"
    return 3
  fi
  local name pid state any=0
  while read -r name pid; do
    if alive "$pid"; then state=running; any=1; else state=exited; fi
    printf '%-24s pid %-8s %s\n' "$name" "$pid" "$state"
  done <"$pids_file"
  [ -f "$run/env" ] && sed -n 's/^\(APISERVER\|ETCD\|JITGUARD_WEBHOOK\|JITGUARD_METRICS\|KUBECONFIG_USERS\|JITGUARD_AUDIT\)=/  \1 /p' "$run/env"
  [ "$any" = 1 ] || return 3
}

case "${1:-}" in
  up) up ;;
  down) stop_all ;;
  status) status ;;
  *) echo "usage: bash tests/e2e/cluster.sh up|down|status" >&2; exit 2 ;;
esac
