//! The MCP server, driven by a real MCP client from outside the project: the official Python
//! SDK (`mcp` on PyPI, installed by `scripts/mcp-client/install.sh`), running
//! `tests/mcp/client.py`. Over stdio (`driftguard mcp --config FILE`) and over streamable HTTP
//! (`/mcp` on `driftguard serve`, behind the API's bearer token): initialize, list the tools,
//! call each one, bad arguments (protocol errors), things that do not exist (tool errors),
//! resources, the prompt; over HTTP a missing or wrong token is refused. On the demo, with a
//! Secret rotated by hand: its value appears in no answer.
//!
//! With `DRIFTGUARD_MCP_TRANSCRIPT=DIR`, the JSON-RPC messages of both sessions are written to
//! `DIR/stdio.json` and `DIR/http.json` (`docs/mcp.md` quotes such a run).

mod util;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use util::e2e::{free_port, spawn_server};
use util::{demo_copy, edit};

const TOKEN: &str = "mcp-test-token-93e1";
const VIEWER_TOKEN: &str = "mcp-viewer-token-5a7d0c21e9b4";
/// The Secret value the demo's cluster gets by hand: never in any answer.
const ROTATED: &str = "rotated-by-hand-canary-5c2f";
const DEMO_PASSWORD: &str = "demo-only-not-a-real-password";

fn b64(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The demo with the prod Secret rotated in the cluster.
fn demo() -> (tempfile::TempDir, std::path::PathBuf) {
    let (tmp, demo) = demo_copy();
    edit(
        &demo.join("live/prod.yaml"),
        &format!("DB_PASSWORD: {}", b64(DEMO_PASSWORD)),
        &format!("DB_PASSWORD: {}", b64(ROTATED)),
    );
    (tmp, demo)
}

/// Runs the Python client with `args`; its JSON report.
fn client(cwd: &Path, args: &[&str], transcript: Option<&str>) -> (Value, String) {
    let python = driftguard_test_support::mcp_python();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .args(args)
        .current_dir(cwd)
        .env_remove("DRIFTGUARD_CONFIG")
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1");
    if let Some(dir) = std::env::var_os("DRIFTGUARD_MCP_TRANSCRIPT") {
        if let Some(name) = transcript {
            cmd.env("MCP_TRANSCRIPT", Path::new(&dir).join(name));
        }
    }
    let out = cmd.output().expect("the MCP client runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "the MCP client failed ({}):\n{stderr}\n{stdout}",
        out.status
    );
    let v = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("the client's report is not JSON ({e}):\n{stdout}\n{stderr}"));
    (v, stdout + &stderr)
}

const INVALID_PARAMS: i64 = -32602;
const RESOURCE_NOT_FOUND: i64 = -32002;

/// What both transports must show.
fn check_session(r: &Value, raw: &str) {
    // initialize
    let init = &r["initialize"];
    assert_eq!(init["serverInfo"]["name"], "driftguard", "{init}");
    for cap in ["tools", "resources", "prompts"] {
        assert!(init["capabilities"][cap].is_object(), "{cap}: {init}");
    }
    assert!(init["instructions"]
        .as_str()
        .is_some_and(|s| s.contains("never shown")));

    // the tools, each with an input and an output schema
    let tools = r["tools"].as_object().expect("tools");
    let mut names: Vec<&str> = tools.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "explain_drift",
            "list_drifts",
            "list_environments",
            "object_history",
            "scan_now",
            "suggest_remediation"
        ]
    );
    for (name, t) in tools {
        assert_eq!(t["inputSchema"]["type"], "object", "{name}: {t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{name}: {t}");
        assert!(
            t["description"].as_str().is_some_and(|d| d.len() > 40),
            "{name}: {t}"
        );
    }
    assert!(tools["list_drifts"]["inputSchema"]["properties"]["severity"].is_object());
    assert_eq!(
        tools["scan_now"]["inputSchema"]["required"],
        serde_json::json!(["environment"])
    );
    assert_eq!(tools["list_drifts"]["annotations"]["readOnlyHint"], true);
    assert_eq!(tools["scan_now"]["annotations"]["readOnlyHint"], false);

    // each tool called
    let calls = &r["calls"];
    let ok = |k: &str| -> &Value {
        let c = &calls[k];
        assert_eq!(c["isError"], false, "{k}: {c}");
        &c["structured"]
    };
    let envs = ok("list_environments");
    assert_eq!(envs["items"].as_array().map(Vec::len), Some(2), "{envs}");
    let scan = ok("scan_now");
    assert_eq!(scan["environment"], "prod");
    assert!(scan["counts"]["modified"].as_u64() > Some(0), "{scan}");
    assert!(scan["score"].as_f64() > Some(0.0), "{scan}");
    let drifts = ok("list_drifts");
    let items = drifts["items"].as_array().expect("items");
    assert!(items.len() >= 7, "{drifts}");
    assert!(items
        .iter()
        .all(|d| d["findings"].is_array() && d["risk"].is_string()));
    let high = ok("list_drifts_high");
    assert!(high["items"]
        .as_array()
        .expect("items")
        .iter()
        .all(|d| d["severity"] == "high" || d["severity"] == "critical"));
    // the hotfixed image: the diff, who, and the supply-chain finding
    for k in ["explain_drift", "explain_drift_by_object"] {
        let d = ok(k);
        assert_eq!(
            d["drift"]["object"]["reference"], "Deployment.apps/shop/api",
            "{k}: {d}"
        );
        assert_eq!(
            d["fields"][0]["path"],
            "spec.template.spec.containers[api].image"
        );
        assert_eq!(
            d["fields"][0]["live"],
            "ghcr.io/example/shop-api:1.4.3-hotfix"
        );
        assert_eq!(d["attribution"]["who"], "kubectl-set");
        let f = &d["drift"]["findings"][0];
        assert_eq!(f["rule"], "image-not-in-git", "{d}");
        assert_eq!(f["category"], "supply-chain");
    }
    let h = ok("object_history");
    assert_eq!(h["object"]["reference"], "Deployment.apps/shop/api");
    assert_eq!(h["events"][0]["event"], "detected", "{h}");
    let plan = ok("suggest_remediation");
    assert_eq!(plan["action"], "revert", "{plan}");
    assert_eq!(plan["applied"], false);
    assert!(plan["text"]
        .as_str()
        .is_some_and(|t| t.contains("kubectl apply -f api.yaml")));
    let adopt = ok("suggest_remediation_adopt");
    assert_eq!(adopt["action"], "adopt");
    assert_eq!(
        adopt["steps"][0]["changes"][0]["to"],
        "ghcr.io/example/shop-api:1.4.3-hotfix"
    );
    // what does not exist: a tool result marked as an error, with the API's code
    for k in ["explain_unknown_episode", "scan_unknown_environment"] {
        assert_eq!(calls[k]["isError"], true, "{k}: {}", calls[k]);
        assert_eq!(calls[k]["structured"]["error"]["code"], "not_found");
    }

    // bad arguments: protocol errors (invalid params)
    for (k, e) in r["errors"].as_object().expect("errors") {
        assert_eq!(e["code"], INVALID_PARAMS, "{k}: {e}");
    }
    assert!(r["errors"]["bad_severity"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("unknown severity `extreme`")));
    assert!(r["errors"]["unknown_argument"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("unknown field `colour`")));

    // resources
    let res = &r["resources"];
    let uris: Vec<&str> = res["list"]
        .as_array()
        .expect("list")
        .iter()
        .map(|x| x["uri"].as_str().expect("uri"))
        .collect();
    assert_eq!(
        uris,
        [
            "driftguard://environments",
            "driftguard://environments/staging/report",
            "driftguard://environments/prod/report"
        ]
    );
    assert_eq!(res["templates"].as_array().map(Vec::len), Some(2));
    assert_eq!(res["report_mime"], "application/json");
    assert_eq!(res["report"]["environment"]["name"], "prod");
    assert!(
        res["report"]["open"].as_u64() >= Some(7),
        "{}",
        res["report"]
    );
    assert_eq!(res["drift"]["drift"]["episode"], r["episode"]);
    assert_eq!(res["unknown"]["code"], RESOURCE_NOT_FOUND);

    // the prompt
    let prompts = &r["prompts"];
    assert_eq!(prompts["list"][0]["name"], "triage_open_drifts");
    assert_eq!(prompts["list"][0]["arguments"][0]["name"], "environment");
    assert_eq!(prompts["list"][0]["arguments"][0]["required"], true);
    let text = prompts["triage"]["messages"][0]["content"]["text"]
        .as_str()
        .expect("prompt text");
    for s in [
        "`prod`",
        "list_drifts",
        "explain_drift",
        "suggest_remediation",
    ] {
        assert!(text.contains(s), "{s} in {text}");
    }
    assert_eq!(prompts["unknown_environment"]["code"], INVALID_PARAMS);

    // the rotated Secret drifted, but its values appear nowhere
    assert!(items
        .iter()
        .any(|d| d["object"]["reference"] == "Secret/shop/api-credentials"));
    for secret in [ROTATED, DEMO_PASSWORD] {
        assert!(!raw.contains(secret), "{secret} leaked");
        assert!(!raw.contains(&b64(secret)), "{secret} leaked (base64)");
    }
}

#[test]
fn mcp_over_stdio_with_the_python_sdk() {
    let (_tmp, demo) = demo();
    let config = demo.join("driftguard.yaml").display().to_string();
    let bin = env!("CARGO_BIN_EXE_driftguard");
    let (r, raw) = client(
        &demo,
        &[
            "stdio",
            "prod",
            "Deployment/shop/api",
            "--",
            bin,
            "--config",
            &config,
            "mcp",
        ],
        Some("stdio.json"),
    );
    assert_eq!(r["transport"], "stdio");
    check_session(&r, &raw);
    // the scan the assistant ran is in the history the CLI reads
    let out = util::run_in(&demo, &["drifts", "-e", "prod", "-o", "json"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.json().as_array().is_some_and(|a| a.len() >= 7));
}

#[test]
fn mcp_over_http_behind_the_api_token() {
    let (tmp, demo) = demo();
    let config = demo.join("driftguard.yaml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(
        "server:\n  tokenEnv: MCP_TEST_TOKENS\n  apiTokens:\n    - {name: viewer, tokenEnv: MCP_VIEWER_TOKEN, scopes: [read]}\n",
    );
    std::fs::write(&config, text).expect("config written");
    let port = free_port();
    let server = spawn_server(
        &demo,
        &["--config", "driftguard.yaml"],
        &[
            ("MCP_TEST_TOKENS", TOKEN),
            ("MCP_VIEWER_TOKEN", VIEWER_TOKEN),
        ],
        port,
        tmp.path().join("serve.log"),
        TOKEN,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while !matches!(server.get("/api/v1/environments"), Some((200, _))) {
        assert!(
            Instant::now() < deadline,
            "serve did not answer:\n{}",
            server.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (r, raw) = client(
        &demo,
        &[
            "http",
            "prod",
            "Deployment/shop/api",
            &url,
            TOKEN,
            VIEWER_TOKEN,
        ],
        Some("http.json"),
    );
    assert_eq!(r["transport"], "http");
    check_session(&r, &raw);
    // the same authentication as the API
    let auth = &r["auth"];
    assert_eq!(auth["no_token"]["status"], 401, "{auth}");
    assert_eq!(auth["no_token"]["www_authenticate"], "Bearer");
    assert!(auth["no_token"]["body"]
        .as_str()
        .is_some_and(|b| b.contains("\"unauthorized\"")));
    assert_eq!(auth["wrong_token"]["status"], 401, "{auth}");
    assert!(
        auth["sdk_with_wrong_token"].is_string(),
        "the SDK connected with a wrong token: {auth}"
    );
    // scan_now needs the scan scope, as `POST .../scan` does: a read-only token is refused
    let viewer = &r["scan_as_read_only"];
    assert_eq!(viewer["is_error"], true, "{viewer}");
    assert!(
        viewer["text"]
            .as_str()
            .is_some_and(|t| t.contains("forbidden") && t.contains("`scan` scope")),
        "{viewer}"
    );
    // concurrent scan requests of one environment share one scan
    let before = server
        .json("/api/v1/scans?environment=prod&limit=100")
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .expect("scans");
    let asked: Vec<_> = (0..10)
        .map(|_| {
            let port = server.port;
            std::thread::spawn(move || post_scan(port, "prod"))
        })
        .collect();
    for a in asked {
        assert_eq!(a.join().expect("a scan request"), 200);
    }
    let after = server
        .json("/api/v1/scans?environment=prod&limit=100")
        .and_then(|v| v["items"].as_array().map(Vec::len))
        .expect("scans");
    assert!(
        after - before < 10,
        "ten concurrent requests ran {} scans",
        after - before
    );
    assert!(!server.log().contains(ROTATED));
}

/// `POST /api/v1/environments/{env}/scan` with the test token: the status.
fn post_scan(port: u16, env: &str) -> u16 {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    write!(
        s,
        "POST /api/v1/environments/{env}/scan HTTP/1.0\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 0\r\n\r\n"
    )
    .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("answer");
    out.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0)
}
