use super::*;
use serde_json::json;

fn diff(path: &str, desired: Value, live: Value) -> FieldDiff {
    let opt = |v: Value| if v.is_null() { None } else { Some(v) };
    FieldDiff {
        path: path.into(),
        desired: opt(desired),
        live: opt(live),
    }
}

fn rules(id: &ResourceId, fields: &[FieldDiff]) -> Vec<(String, Severity)> {
    FindingRules::default()
        .judge(&FindingInput::new(id, DriftKind::Modified, fields))
        .into_iter()
        .map(|f| (f.rule, f.risk))
        .collect()
}

fn deploy() -> ResourceId {
    ResourceId::new("e", "apps", "Deployment", Some("n"), "web")
}

#[test]
fn images() {
    let i = parse_image("registry.example.com/acme/checkout:1.4.2");
    assert_eq!(i.registry, "registry.example.com");
    assert_eq!(i.repository, "acme/checkout");
    assert_eq!(i.tag.as_deref(), Some("1.4.2"));
    assert!(!i.mutable());
    assert!(parse_image("nginx").mutable());
    assert!(parse_image("nginx:latest").mutable());
    assert!(!parse_image("nginx:latest@sha256:abc").mutable());
    let p = parse_image("localhost:5000/app");
    assert_eq!((p.registry.as_str(), p.tag), ("localhost:5000", None));
    let path = "spec.template.spec.containers[api].image";
    let r = |d: &str, l: &str| rules(&deploy(), &[diff(path, json!(d), json!(l))]);
    assert_eq!(
        r("acme/api:1.4.2", "acme/api:1.4.3-hotfix"),
        [("image-not-in-git".to_owned(), Severity::Medium)]
    );
    assert_eq!(
        r("acme/api:1.4.2", "acme/api:latest"),
        [("image-mutable-tag".to_owned(), Severity::High)]
    );
    assert_eq!(
        r("acme/api:1.4.2@sha256:aa", "acme/api:1.4.2"),
        [("image-digest-dropped".to_owned(), Severity::High)]
    );
    assert_eq!(
        r(
            "registry.example.com/acme/api:1",
            "evil.example.org/acme/api:1"
        ),
        [("image-registry-changed".to_owned(), Severity::High)]
    );
}

#[test]
fn security_context_rules() {
    let c = "spec.template.spec.containers[api].securityContext";
    let id = deploy();
    assert_eq!(
        rules(
            &id,
            &[diff(&format!("{c}.privileged"), Value::Null, json!(true))]
        ),
        [("privileged".to_owned(), Severity::Critical)]
    );
    assert_eq!(
        rules(
            &id,
            &[diff(
                &format!("{c}.allowPrivilegeEscalation"),
                json!(false),
                json!(true)
            )]
        ),
        [("privilege-escalation".to_owned(), Severity::High)]
    );
    assert_eq!(
        rules(
            &id,
            &[diff(&format!("{c}.runAsNonRoot"), json!(true), Value::Null)]
        ),
        [("run-as-root".to_owned(), Severity::High)]
    );
    assert_eq!(
        rules(
            &id,
            &[diff(
                c,
                Value::Null,
                json!({"capabilities": {"add": ["NET_ADMIN"]}})
            )]
        ),
        [("capabilities-added".to_owned(), Severity::High)]
    );
    assert_eq!(
        rules(
            &id,
            &[diff(
                &format!("{c}.capabilities.add"),
                json!(["CHOWN"]),
                json!(["CHOWN", "SYS_ADMIN"])
            )]
        ),
        [("capabilities-added".to_owned(), Severity::Critical)]
    );
    // tightening is no finding
    assert!(rules(
        &id,
        &[diff(&format!("{c}.privileged"), json!(true), json!(false))]
    )
    .is_empty());
    assert_eq!(
        rules(
            &id,
            &[diff(
                "spec.template.spec.hostNetwork",
                Value::Null,
                json!(true)
            )]
        ),
        [("host-namespace".to_owned(), Severity::Critical)]
    );
}

#[test]
fn host_path_from_the_live_volume() {
    let id = deploy();
    let live = Doc::from_value(&json!({"spec": {"template": {"spec": {"volumes": {
        "[data]": {"name": "data", "hostPath": {"path": "/var/lib"}}}}}}}));
    let fields = [diff(
        "spec.template.spec.volumes[data].emptyDir",
        json!({}),
        Value::Null,
    )];
    let input = FindingInput {
        live: Some(&live),
        ..FindingInput::new(&id, DriftKind::Modified, &fields)
    };
    let f = FindingRules::default().judge(&input);
    assert_eq!(f[0].rule, "host-path");
    assert_eq!(f[0].risk, Severity::Critical);
}

#[test]
fn rbac_widening() {
    let role = ResourceId::new("e", RBAC_GROUP, "Role", Some("n"), "reader");
    let git = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
    let mut wider = git.clone();
    wider
        .as_array_mut()
        .expect("a list")
        .push(json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}));
    let f = FindingRules::default().judge(&FindingInput::new(
        &role,
        DriftKind::Modified,
        &[diff("rules", git.clone(), wider)],
    ));
    assert_eq!(f.len(), 1);
    assert_eq!(
        (f[0].rule.as_str(), f[0].risk),
        ("rbac-widened", Severity::High)
    );
    assert!(
        f[0].reason.contains("get secrets (core)"),
        "{}",
        f[0].reason
    );
    let star = json!([{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]);
    assert_eq!(
        rules(&role, &[diff("rules", git.clone(), star)]),
        [("rbac-widened".to_owned(), Severity::Critical)]
    );
    // narrowing is no finding
    let narrow = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]);
    assert!(rules(&role, &[diff("rules", git, narrow)]).is_empty());
    let binding = ResourceId::new("e", RBAC_GROUP, "ClusterRoleBinding", None, "b");
    assert_eq!(
        rules(
            &binding,
            &[diff("roleRef.name", json!("view"), json!("cluster-admin"))]
        ),
        [("cluster-admin-binding".to_owned(), Severity::Critical)]
    );
    assert_eq!(
        rules(
            &binding,
            &[diff(
                "subjects",
                json!([{"kind": "User", "name": "a"}]),
                json!([{"kind": "User", "name": "a"}, {"kind": "Group", "name": "system:authenticated"}])
            )]
        ),
        [("rbac-subjects-added".to_owned(), Severity::Critical)]
    );
}

#[test]
fn availability_rules() {
    let id = deploy();
    assert_eq!(
        rules(&id, &[diff("spec.replicas", json!(3), json!(0))]),
        [("replicas-zero".to_owned(), Severity::High)]
    );
    assert_eq!(
        rules(&id, &[diff("spec.replicas", json!(4), json!(2))]),
        [("replicas-cut".to_owned(), Severity::Medium)]
    );
    assert!(rules(&id, &[diff("spec.replicas", json!(3), json!(5))]).is_empty());
    let lim = "spec.template.spec.containers[api].resources.limits.memory";
    assert_eq!(
        rules(&id, &[diff(lim, json!("256Mi"), Value::Null)]),
        [("limits-removed".to_owned(), Severity::Medium)]
    );
    assert_eq!(
        rules(&id, &[diff(lim, json!("256Mi"), json!("64Mi"))]),
        [("limits-cut".to_owned(), Severity::Medium)]
    );
    assert!(rules(&id, &[diff(lim, json!("256Mi"), json!("200Mi"))]).is_empty());
    let probe = "spec.template.spec.containers[api].readinessProbe";
    let f = rules(
        &id,
        &[
            diff(
                &format!("{probe}.httpGet.path"),
                json!("/healthz"),
                Value::Null,
            ),
            diff(&format!("{probe}.periodSeconds"), json!(10), Value::Null),
        ],
    );
    assert_eq!(f, [("probe-removed".to_owned(), Severity::Medium)]);
    let pdb = ResourceId::new("e", "policy", "PodDisruptionBudget", Some("n"), "p");
    assert_eq!(
        rules(&pdb, &[diff("spec.minAvailable", json!(2), json!(0))]),
        [("pdb-loosened".to_owned(), Severity::Medium)]
    );
}

#[test]
fn network_rules() {
    let np = ResourceId::new("e", "networking.k8s.io", "NetworkPolicy", Some("n"), "deny");
    let git = json!([{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}]);
    let open = json!([{"from": [{"podSelector": {"matchLabels": {"app": "web"}}}]}, {}]);
    let f = FindingRules::default().judge(&FindingInput::new(
        &np,
        DriftKind::Modified,
        &[diff("spec.ingress", git, open)],
    ));
    assert_eq!(f[0].rule, "network-policy-opened");
    assert!(
        f[0].reason.contains("allows all ingress"),
        "{}",
        f[0].reason
    );
    let missing = FindingRules::default().judge(&FindingInput::new(&np, DriftKind::Missing, &[]));
    assert_eq!(missing[0].rule, "network-policy-removed");
    let svc = ResourceId::new("e", "", "Service", Some("n"), "api");
    assert_eq!(
        rules(
            &svc,
            &[diff("spec.type", json!("ClusterIP"), json!("LoadBalancer"))]
        ),
        [("service-exposed".to_owned(), Severity::High)]
    );
}

#[test]
fn orphans_are_judged_on_their_content() {
    let b = ResourceId::new("e", RBAC_GROUP, "ClusterRoleBinding", None, "oops");
    let live = Doc::from_value(&json!({
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"kind": "ServiceAccount", "name": "api", "namespace": "shop"}]}));
    let input = FindingInput {
        live: Some(&live),
        ..FindingInput::new(&b, DriftKind::Orphan, &[])
    };
    let f = FindingRules::default().judge(&input);
    assert_eq!(
        (f[0].rule.as_str(), f[0].risk),
        ("cluster-admin-binding", Severity::Critical)
    );
    assert!(
        f[0].reason.contains("ServiceAccount shop/api"),
        "{}",
        f[0].reason
    );
    // a ConfigMap created by hand is no finding
    let cm = ResourceId::new("e", "", "ConfigMap", Some("n"), "debug");
    let live = Doc::from_value(&json!({"data": {"k": "v"}}));
    let input = FindingInput {
        live: Some(&live),
        ..FindingInput::new(&cm, DriftKind::Orphan, &[])
    };
    assert!(FindingRules::default().judge(&input).is_empty());
}

#[test]
fn secrets_are_never_read() {
    let s = ResourceId::new("e", "", "Secret", Some("n"), "creds");
    let live = Doc::from_value(&json!({"data": {"hostPath": "x"}}));
    let fields = [diff(
        "data.k",
        json!("(secret value)"),
        json!("(secret value)"),
    )];
    let input = FindingInput {
        live: Some(&live),
        ..FindingInput::new(&s, DriftKind::Modified, &fields)
    };
    let mut ctx = Ctx {
        input: &input,
        desired: OnceCell::new(),
        live: OnceCell::new(),
        out: Vec::new(),
    };
    assert!(ctx.live().is_none());
    ctx.add(
        "x",
        FindingCategory::Security,
        Severity::Low,
        None,
        String::new(),
    );
    assert!(FindingRules::default().judge(&input).is_empty());
}

#[test]
fn labels_are_cosmetic_and_controllers_noise() {
    let id = deploy();
    assert_eq!(
        rules(
            &id,
            &[diff("metadata.labels.team", Value::Null, json!("search"))]
        ),
        [("metadata-only".to_owned(), Severity::Low)]
    );
    let fields = [diff(
        "spec.template.spec.containers[api].env[X]",
        Value::Null,
        json!({"name": "X"}),
    )];
    let owner = |m: &str, op: &str| FieldOwner {
        path: fields[0].path.clone(),
        manager: m.into(),
        operation: op.into(),
        subresource: String::new(),
        time: None,
        audit_id: None,
    };
    let judge = |o: FieldOwner| {
        let owners = [o];
        let input = FindingInput {
            owners: &owners,
            ..FindingInput::new(&id, DriftKind::Modified, &fields)
        };
        FindingRules::default()
            .judge(&input)
            .into_iter()
            .map(|f| f.rule)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        judge(owner("istio-sidecar-injector", "Update")),
        ["controller-owned"]
    );
    assert!(judge(owner("kubectl-set", "Update")).is_empty());
    assert!(judge(owner("istio-sidecar-injector", "Apply")).is_empty());
}

#[test]
fn overrides_change_or_drop() {
    let id = deploy();
    let fields = [diff(
        "spec.template.spec.containers[api].image",
        json!("a:1"),
        json!("a:2"),
    )];
    let input = FindingInput::new(&id, DriftKind::Modified, &fields);
    let rules: FindingRules = serde_yaml::from_str(
        "overrides:\n  - rule: image-*\n    risk: high\n  - namespace: dev\n    off: true\n",
    )
    .expect("valid rules");
    assert_eq!(rules.judge(&input)[0].risk, Severity::High);
    let dev = ResourceId::new("e", "apps", "Deployment", Some("dev"), "web");
    assert!(rules
        .judge(&FindingInput::new(&dev, DriftKind::Modified, &fields))
        .is_empty());
    assert!(serde_yaml::from_str::<FindingRules>("overrides: [{rules: x}]\n").is_err());
}

#[test]
fn risk_for_the_score() {
    let f = |category, risk| Finding {
        rule: "r".into(),
        category,
        risk,
        path: None,
        reason: String::new(),
    };
    assert_eq!(drift_risk(Severity::Medium, &[]), Severity::Medium);
    assert_eq!(
        drift_risk(
            Severity::High,
            &[f(FindingCategory::Security, Severity::Critical)]
        ),
        Severity::Critical
    );
    assert_eq!(
        drift_risk(
            Severity::Medium,
            &[f(FindingCategory::LikelyNoise, Severity::Low)]
        ),
        Severity::Low
    );
    assert_eq!(
        drift_risk(
            Severity::Medium,
            &[
                f(FindingCategory::LikelyNoise, Severity::Low),
                f(FindingCategory::SupplyChain, Severity::Medium)
            ]
        ),
        Severity::Medium
    );
}
