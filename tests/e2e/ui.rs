//! `kubectl jit ui` in a real browser (headless Chromium) against the real control plane:
//! each person runs their own page, acting as themselves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use crate::browser::{Driver, Session};
use crate::cluster::{root, unique, Cluster};

/// One person's `kubectl jit ui`.
struct Page {
    child: Child,
    /// The address it printed, with its token.
    url: String,
    base: String,
    token: String,
}

impl Page {
    fn start(c: &Cluster, user: &str) -> Page {
        Self::start_with(c, user, &["--no-open"], None)
    }

    /// With `path`: the PATH the page runs with (a stand-in `xdg-open` on it).
    fn start_with(c: &Cluster, user: &str, flags: &[&str], path: Option<&str>) -> Page {
        let mut command = Command::new(env!("CARGO_BIN_EXE_jitguard"));
        if let Some(path) = path {
            command.env("PATH", path);
        }
        let mut child = command
            .arg("jit")
            .arg("--kubeconfig")
            .arg(c.kubeconfig())
            .args(["--context", user, "ui", "--addr", "127.0.0.1:0"])
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines
            .find_map(|l| l.ok().filter(|l| l.contains(" open http")))
            .unwrap_or_else(|| {
                let mut err = String::new();
                use std::io::Read;
                let _ = child.stderr.take().unwrap().read_to_string(&mut err);
                panic!("kubectl jit ui did not start: {err}")
            });
        assert!(line.contains(&format!("acting as {user};")), "{line}");
        let url = line.split(" open ").nth(1).unwrap().trim().to_string();
        let (base, token) = url.split_once("/?token=").unwrap();
        Page {
            child,
            base: base.to_string(),
            token: token.to_string(),
            url,
        }
    }

    fn port(&self) -> &str {
        self.base.rsplit(':').next().unwrap()
    }

    /// `curl` against the page: the status code, with the session cookie when `cookie`.
    fn curl(&self, cookie: bool, args: &[&str]) -> String {
        let mut command = Command::new("curl");
        command.args(["-s", "-o", "/dev/null", "-w", "%{http_code}"]);
        if cookie {
            command.args([
                "-H",
                &format!("Cookie: jitguard_ui_{}={}", self.port(), self.token),
            ]);
        }
        let out = command.args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn shot(name: &str) -> PathBuf {
    root()
        .join("target/e2e/screenshots")
        .join(format!("{name}.png"))
}

/// The request whose page the session shows (`/requests/NAME?...`).
fn shown_request(session: &Session<'_>) -> String {
    let url = session.url();
    let after = url.split("/requests/").nth(1).unwrap_or_default();
    after.split('?').next().unwrap_or_default().to_string()
}

fn signed_in<'d>(driver: &'d Driver, page: &Page) -> Session<'d> {
    let session = driver.session();
    session.go(&page.url);
    // The token is exchanged for the session's cookie and leaves the address bar.
    session.until("the page opens", false, |s| {
        !s.url().contains("token=") && s.text("h1") == "Access requests"
    });
    session
}

#[test]
fn approvers_decide_in_the_browser_and_the_requester_sees_the_grant_live() {
    let c = Cluster::shared();
    let (alice_page, bob_page, sam_page) = (
        Page::start(c, "alice"),
        Page::start(c, "bob"),
        Page::start(c, "sam"),
    );
    let driver = Driver::start();

    // Alice asks with the form; the scope builder previews the rule as she types.
    let alice = signed_in(&driver, &alice_page);
    alice.go(&format!(
        "{}/new?namespace=prod&resource=configmaps&operation=CREATE",
        alice_page.base
    ));
    assert_eq!(
        alice.text("#scope-preview"),
        "CREATE configmaps (core) in prod"
    );
    let object = unique("ui-settings");
    alice.type_into("input[name=names]", &object);
    alice.until("the preview follows the form", false, |s| {
        s.text("#scope-preview") == format!("CREATE configmaps (core) in prod named {object}")
    });
    alice.type_into("textarea[name=reason]", "e2e: rotate settings for INC-9");
    alice.type_into("input[name=ticket]", "INC-9");
    alice.screenshot(&shot("ui-new-request"));
    alice.click("button.submit");
    alice.until("the request's page", false, |s| {
        s.url().contains("/requests/")
    });
    let name = shown_request(&alice);
    assert_eq!(alice.text(".phase"), "Pending");
    assert_eq!(
        alice.text(".needs"),
        "1 of team lead (team-leads, sre-leads) and 1 of security (security)"
    );
    assert_eq!(c.access_request(&name)["spec"]["requester"], "alice");

    // Bob sees it waiting for him, approves with a comment, and is shown what is left.
    let bob = signed_in(&driver, &bob_page);
    let row = format!("#waiting-{name}");
    bob.until("alice's request waits for bob", true, |s| {
        !s.text(&row).is_empty()
    });
    assert!(bob.text(&row).contains("e2e: rotate settings for INC-9"));
    bob.screenshot(&shot("ui-waiting"));
    bob.type_into(&format!("{row} input[name=comment]"), "checked the diff");
    bob.click(&format!("{row} button.approve"));
    bob.until("bob's approval is recorded", false, |s| {
        s.text(".flash") == "Your approval is recorded."
    });
    assert_eq!(bob.text(".needs"), "1 of security (security)");
    assert!(bob.text("#decisions").contains("approved by bob"));
    assert!(bob.text("#decisions").contains(": checked the diff"));
    bob.screenshot(&shot("ui-request"));

    // Sam approves on his own page: the grant is live.
    let sam = signed_in(&driver, &sam_page);
    sam.until("alice's request waits for sam", true, |s| {
        !s.text(&row).is_empty()
    });
    sam.click(&format!("{row} button.approve"));
    sam.until("the grant is live", false, |s| {
        s.text(".phase") == "Approved"
    });

    // Alice's page shows it live, with a countdown the page's script keeps running.
    alice.go(&alice_page.base);
    let countdown = format!("#live-{name} .countdown");
    alice.until("alice sees her grant live", true, |s| {
        s.text(&format!("#mine-{name} .phase")) == "Approved"
    });
    let first = alice.text(&countdown);
    assert!(first.ends_with(" left") && first.contains('m'), "{first:?}");
    alice.until("the countdown ticks", false, |s| {
        let now = s.text(&countdown);
        now != first && now.ends_with(" left")
    });
    alice.screenshot(&shot("ui-live"));
    // Her history has the decisions and the Events the controller published.
    alice.go(&format!("{}/requests/{name}", alice_page.base));
    alice.until("the Events are in the history", true, |s| {
        let events = s.text("#events");
        events.contains("Requested alice asks for 30m of access")
            && events.contains("approval requirements met")
    });
    assert!(alice.text("#decisions").contains("approved by sam"));

    // More time: alice extends from her page; bob denies the extension with a comment.
    alice.go(&alice_page.base);
    let mine = format!("#mine-{name}");
    alice.type_into(
        &format!("{mine} input[name=reason]"),
        "the rotation needs another pass",
    );
    alice.click(&format!("{mine} button.extend"));
    alice.until("the extension's page", false, |s| {
        s.text(".flash").starts_with("Asked for more time")
    });
    let extension = shown_request(&alice);
    assert!(
        extension.starts_with(&format!("{name}-ext-")),
        "{extension}"
    );
    assert_eq!(
        c.access_request(&extension)["spec"]["extends"],
        name.as_str()
    );
    let ext_row = format!("#waiting-{extension}");
    bob.go(&bob_page.base);
    bob.until("the extension waits for bob", true, |s| {
        !s.text(&ext_row).is_empty()
    });
    bob.type_into(
        &format!("{ext_row} input[name=comment]"),
        "finish it tomorrow",
    );
    bob.click(&format!("{ext_row} button.deny"));
    bob.until("bob's denial is recorded", false, |s| {
        s.text(".flash") == "Your denial is recorded."
    });
    assert_eq!(bob.text(".phase"), "Denied");
    assert!(bob.text("#decisions").contains("denied by bob"));
    assert!(bob.text("#decisions").contains(": finish it tomorrow"));
    assert_eq!(c.phase(&extension), "Denied");

    // A live break-glass grant puts a banner on every page.
    let glass = unique("ui-glass");
    c.ask(
        "carol",
        &glass,
        &[
            "--namespace",
            "staging",
            "--resource",
            "secrets",
            "--name",
            "ui-e2e-only",
            "--operation",
            "UPDATE",
            "--duration",
            "10m",
            "--break-glass",
        ],
    )
    .success();
    alice.go(&alice_page.base);
    alice.until("the break-glass banner shows", true, |s| {
        s.text(".banner")
            .contains(&format!("BREAK-GLASS grant live: {glass} by carol"))
    });
    alice.screenshot(&shot("ui-break-glass"));
    c.jit("carol", &["revoke", &glass]).success();

    // Nobody else gets in, and no other site can act through it.
    assert_eq!(alice_page.curl(false, &[&alice_page.base]), "401");
    assert_eq!(
        alice_page.curl(false, &[&format!("{}/?token=wrong", alice_page.base)]),
        "401"
    );
    assert_eq!(
        alice_page.curl(true, &["-H", "Host: evil.example", &alice_page.base]),
        "403",
        "a DNS-rebinding host is refused"
    );
    let revoke = format!("{}/requests/{name}/revoke", alice_page.base);
    let csrf = format!("csrf={}", alice_page.token);
    assert_eq!(
        alice_page.curl(
            true,
            &["-H", "Origin: http://evil.example", "-d", &csrf, &revoke]
        ),
        "403"
    );
    let origin = format!("Origin: {}", alice_page.base);
    assert_eq!(
        alice_page.curl(true, &["-H", &origin, "-d", "csrf=guess", &revoke]),
        "403"
    );
    assert_eq!(c.phase(&name), "Approved", "nothing was revoked");
    let headers = Command::new("curl")
        .args(["-s", "-D", "-", "-o", "/dev/null"])
        .arg(format!("{}/", alice_page.base))
        .output()
        .unwrap();
    let headers = String::from_utf8_lossy(&headers.stdout).to_lowercase();
    assert!(
        headers.contains("content-security-policy: default-src 'none'; script-src 'self'"),
        "{headers}"
    );
    // From the page itself, the Revoke button works: it acts as alice.
    alice.go(&alice_page.base);
    alice.click(&format!("#mine-{name} button.revoke"));
    alice.until("the revocation is shown", false, |s| {
        s.text(".flash") == "Revoked."
    });
    assert_eq!(alice.text(".phase"), "Revoked");
    assert_eq!(c.phase(&name), "Revoked");
    assert_eq!(c.access_request(&name)["status"]["revokedBy"], "alice");
}

/// Without --no-open the page opens its address in the browser (`xdg-open`, here a
/// stand-in on the PATH that records what it was asked to open).
#[test]
fn the_page_opens_the_address_it_prints() {
    let c = Cluster::shared();
    let dir = tempfile::tempdir().unwrap();
    let opened = dir.path().join("opened");
    let opener = dir.path().join("xdg-open");
    std::fs::write(
        &opener,
        format!("#!/bin/sh\nprintf '%s' \"$1\" > {}\n", opened.display()),
    )
    .unwrap();
    Command::new("chmod")
        .arg("+x")
        .arg(&opener)
        .status()
        .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap()
    );
    let page = Page::start_with(c, "alice", &[], Some(&path));
    crate::cluster::eventually(
        "the browser is asked to open the page",
        std::time::Duration::from_secs(30),
        || std::fs::read_to_string(&opened).is_ok_and(|url| url == page.url),
    );
    assert!(page.url.starts_with("http://127.0.0.1:") && page.url.contains("/?token="));
}
