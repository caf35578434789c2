//! Security findings on a modified object: security contexts, host paths, RBAC rules and
//! bindings, network policies, Service and Ingress exposure.

use super::*;

pub(super) fn security_context(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String], last: &str) {
    let p = &f.path;
    let who = match container_of(segs) {
        Some((_, name)) => format!("container `{name}`"),
        None => "the pods".to_owned(),
    };
    let sc_value = |v: &Option<Value>, key: &str| -> Option<Value> {
        // the diff may be at the securityContext map itself (added or removed whole)
        match last {
            "securityContext" => v.as_ref().and_then(|m| m.get(key)).cloned(),
            l if l == key => v.clone(),
            _ => None,
        }
    };
    let at_sc = last == "securityContext";
    if (at_sc || last == "privileged") && is_true(&sc_value(&f.live, "privileged")) {
        ctx.add(
            "privileged",
            FindingCategory::Security,
            Severity::Critical,
            Some(p),
            format!("{who} runs privileged in the cluster: full access to the node"),
        );
    }
    if at_sc || last == "allowPrivilegeEscalation" {
        let d = sc_value(&f.desired, "allowPrivilegeEscalation");
        let l = sc_value(&f.live, "allowPrivilegeEscalation");
        let denied_in_git = d.as_ref().and_then(Value::as_bool) == Some(false);
        let denied_live = l.as_ref().and_then(Value::as_bool) == Some(false);
        if denied_in_git && !denied_live {
            ctx.add(
                "privilege-escalation",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "Git forbids privilege escalation for {who}; the cluster allows it \
                     (allowPrivilegeEscalation: {})",
                    show(&l)
                ),
            );
        }
    }
    if at_sc || last == "runAsNonRoot" {
        let d = sc_value(&f.desired, "runAsNonRoot");
        let l = sc_value(&f.live, "runAsNonRoot");
        if is_true(&d) && !is_true(&l) {
            ctx.add(
                "run-as-root",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "Git requires {who} to run as non-root; the cluster dropped it (runAsNonRoot: {})",
                    show(&l)
                ),
            );
        }
    }
    if at_sc || last == "runAsUser" {
        let d = sc_value(&f.desired, "runAsUser");
        let l = sc_value(&f.live, "runAsUser");
        let root_live = l.as_ref().and_then(Value::as_i64) == Some(0);
        let root_git = d.as_ref().and_then(Value::as_i64) == Some(0);
        if root_live && !root_git {
            ctx.add(
                "run-as-root",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "{who} runs as root (runAsUser: 0) in the cluster; Git says {}",
                    show(&d)
                ),
            );
        }
    }
    // capabilities: the diff is at `capabilities`, `capabilities.add` or the whole context
    let caps = |v: &Option<Value>| -> Vec<String> {
        let root = match last {
            "securityContext" => v.as_ref().and_then(|m| m.get("capabilities")),
            "capabilities" => v.as_ref(),
            "add" if segs.len() >= 2 && segs[segs.len() - 2] == "capabilities" => {
                return strings(v.as_ref());
            }
            _ => return Vec::new(),
        };
        strings(root.and_then(|c| c.get("add")))
    };
    let (d, l) = (caps(&f.desired), caps(&f.live));
    let added: Vec<&String> = l.iter().filter(|c| !d.contains(c)).collect();
    if !added.is_empty() {
        let critical = added
            .iter()
            .any(|c| matches!(c.trim_start_matches("CAP_"), "ALL" | "SYS_ADMIN"));
        let names: Vec<&str> = added.iter().map(|s| s.as_str()).collect();
        ctx.add(
            "capabilities-added",
            FindingCategory::Security,
            if critical {
                Severity::Critical
            } else {
                Severity::High
            },
            Some(p),
            format!(
                "{who} gained Linux capabilities in the cluster that Git does not grant: {}",
                names.join(", ")
            ),
        );
    }
}

/// `host-path`: a volume in the cluster mounts a path of the node.
pub(super) fn host_path(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let Some(vi) = segs.iter().position(|s| s == "volumes") else {
        return;
    };
    // the diff's own value, or the volume in the live object (an emptyDir swapped for a
    // hostPath shows only as the emptyDir gone)
    let from_diff = f
        .live
        .as_ref()
        .is_some_and(|v| segs.iter().any(|s| s == "hostPath") || contains_key(v, "hostPath"));
    let volume = segs.get(vi + 1).filter(|s| s.starts_with('['));
    let from_live = volume.is_some_and(|_| {
        ctx.live()
            .and_then(|l| value_at(l, &segs[..vi + 2]))
            .is_some_and(|v| v.get("hostPath").is_some())
    });
    if from_diff || from_live {
        let name = volume.map(|s| item_name(s)).unwrap_or("a volume");
        ctx.add(
            "host-path",
            FindingCategory::Security,
            Severity::Critical,
            Some(&f.path),
            format!("volume `{name}` mounts a path of the node (hostPath) in the cluster"),
        );
    }
}

pub(super) fn contains_key(v: &Value, key: &str) -> bool {
    match v {
        Value::Object(m) => m.contains_key(key) || m.values().any(|c| contains_key(c, key)),
        Value::Array(items) => items.iter().any(|c| contains_key(c, key)),
        _ => false,
    }
}

/// One permission an RBAC rule grants.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Grant {
    group: String,
    resource: String,
    verb: String,
    names: Vec<String>,
}

impl Grant {
    pub(super) fn covered_by(&self, g: &Grant) -> bool {
        let m = |a: &str, b: &str| b == "*" || a == b;
        m(&self.group, &g.group)
            && m(&self.resource, &g.resource)
            && m(&self.verb, &g.verb)
            && (g.names.is_empty() || (!self.names.is_empty() && self.names == g.names))
    }

    pub(super) fn label(&self) -> String {
        let group = if self.group.is_empty() {
            "core".to_owned()
        } else {
            self.group.clone()
        };
        let mut s = format!("{} {} ({group})", self.verb, self.resource);
        if !self.names.is_empty() {
            s.push_str(&format!(" named {}", self.names.join(", ")));
        }
        s
    }

    pub(super) fn dangerous(&self) -> bool {
        self.group == "*"
            || self.resource == "*"
            || self.verb == "*"
            || matches!(self.verb.as_str(), "escalate" | "bind" | "impersonate")
    }
}

pub(super) fn grants(rules: Option<&Value>) -> Vec<Grant> {
    let mut out = Vec::new();
    for rule in list(rules) {
        let verbs = strings(rule.get("verbs"));
        let names = {
            let mut n = strings(rule.get("resourceNames"));
            n.sort();
            n
        };
        let urls = strings(rule.get("nonResourceURLs"));
        for url in &urls {
            for v in &verbs {
                out.push(Grant {
                    group: "(non-resource)".into(),
                    resource: url.clone(),
                    verb: v.clone(),
                    names: Vec::new(),
                });
            }
        }
        let mut groups = strings(rule.get("apiGroups"));
        let resources = strings(rule.get("resources"));
        if groups.is_empty() && !resources.is_empty() {
            // the core group reads back as `[""]`, which normalizes to a list of one empty string
            groups.push(String::new());
        }
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    out.push(Grant {
                        group: g.clone(),
                        resource: r.clone(),
                        verb: v.clone(),
                        names: names.clone(),
                    });
                }
            }
        }
    }
    out
}

/// `rbac-widened`: the cluster's rules grant what Git's do not.
pub(super) fn rbac_rules(ctx: &mut Ctx<'_>, f: &FieldDiff) {
    let desired = grants(f.desired.as_ref());
    let mut added: Vec<Grant> = grants(f.live.as_ref())
        .into_iter()
        .filter(|g| !desired.iter().any(|d| g.covered_by(d)))
        .collect();
    added.sort();
    added.dedup();
    if added.is_empty() {
        return;
    }
    let critical = added.iter().any(Grant::dangerous);
    let labels: Vec<String> = added.iter().take(8).map(Grant::label).collect();
    let more = if added.len() > 8 {
        format!(" and {} more", added.len() - 8)
    } else {
        String::new()
    };
    let id = ctx.input.id;
    ctx.add(
        "rbac-widened",
        FindingCategory::Security,
        if critical {
            Severity::Critical
        } else {
            Severity::High
        },
        Some(&f.path),
        format!(
            "the {} `{}` grants more in the cluster than in Git: {}{more}",
            id.kind,
            id.name,
            labels.join("; ")
        ),
    );
}

pub(super) fn subjects(v: Option<&Value>) -> Vec<String> {
    list(v)
        .into_iter()
        .map(|s| {
            let k = s.get("kind").and_then(Value::as_str).unwrap_or("");
            let n = s.get("name").and_then(Value::as_str).unwrap_or("");
            match s.get("namespace").and_then(Value::as_str) {
                Some(ns) => format!("{k} {ns}/{n}"),
                None => format!("{k} {n}"),
            }
        })
        .collect()
}

pub(super) fn everyone(subject: &str) -> bool {
    [
        "system:anonymous",
        "system:unauthenticated",
        "system:authenticated",
    ]
    .iter()
    .any(|g| subject.ends_with(&format!(" {g}")))
}

pub(super) fn binding_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let first = segs.first().map(String::as_str);
    let p = &f.path;
    if first == Some("roleRef") {
        let name = |v: &Option<Value>| -> Option<String> {
            match segs.get(1).map(String::as_str) {
                Some("name") => v.as_ref().and_then(Value::as_str).map(str::to_owned),
                None => v
                    .as_ref()
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                _ => None,
            }
        };
        if name(&f.live).as_deref() == Some("cluster-admin")
            && name(&f.desired).as_deref() != Some("cluster-admin")
        {
            ctx.add(
                "cluster-admin-binding",
                FindingCategory::Security,
                Severity::Critical,
                Some(p),
                format!(
                    "the binding `{}` points at `cluster-admin` in the cluster (Git: `{}`)",
                    ctx.input.id.name,
                    name(&f.desired).unwrap_or_else(|| "(absent)".into())
                ),
            );
        }
    }
    if first == Some("subjects") {
        let d = subjects(f.desired.as_ref());
        let added: Vec<String> = subjects(f.live.as_ref())
            .into_iter()
            .filter(|s| !d.contains(s))
            .collect();
        if !added.is_empty() {
            let critical = added.iter().any(|s| everyone(s));
            ctx.add(
                "rbac-subjects-added",
                FindingCategory::Security,
                if critical {
                    Severity::Critical
                } else {
                    Severity::High
                },
                Some(p),
                format!(
                    "the binding `{}` grants its role to more subjects in the cluster than in Git: {}",
                    ctx.input.id.name,
                    added.join(", ")
                ),
            );
        }
    }
}

/// Whether a NetworkPolicy rule lets anything in (or out): no peers, an empty peer, or
/// `0.0.0.0/0`.
pub(super) fn open_rule(rule: &Value, peers: &str) -> bool {
    let list = match rule.get(peers) {
        None | Some(Value::Null) => return true,
        Some(Value::Array(items)) => items,
        Some(_) => return false,
    };
    list.is_empty()
        || list.iter().any(|p| {
            p.as_object().is_some_and(|m| m.is_empty())
                || p.get("ipBlock")
                    .and_then(|b| b.get("cidr"))
                    .and_then(Value::as_str)
                    .is_some_and(|c| c == "0.0.0.0/0" || c == "::/0")
        })
}

pub(super) fn network_policy_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    let (direction, peers) = match segs.get(1).map(String::as_str) {
        Some("ingress") => ("ingress", "from"),
        Some("egress") => ("egress", "to"),
        Some("podSelector") => {
            ctx.add(
                "network-policy-opened",
                FindingCategory::Security,
                Severity::Medium,
                Some(p),
                format!(
                    "the NetworkPolicy `{}` selects other pods in the cluster than in Git",
                    ctx.input.id.name
                ),
            );
            return;
        }
        Some("policyTypes") => {
            let d = strings(f.desired.as_ref());
            let l = strings(f.live.as_ref());
            let dropped: Vec<&String> = d.iter().filter(|t| !l.contains(t)).collect();
            if !dropped.is_empty() && f.live.is_some() {
                let names: Vec<&str> = dropped.iter().map(|s| s.as_str()).collect();
                ctx.add(
                    "network-policy-opened",
                    FindingCategory::Security,
                    Severity::High,
                    Some(p),
                    format!(
                        "the NetworkPolicy `{}` no longer restricts {} traffic in the cluster",
                        ctx.input.id.name,
                        names.join(" and ")
                    ),
                );
            }
            return;
        }
        _ => return,
    };
    if segs.len() != 2 {
        return;
    }
    let d = list(f.desired.as_ref());
    let l = list(f.live.as_ref());
    let added: Vec<&&Value> = l.iter().filter(|r| !d.contains(r)).collect();
    if added.is_empty() {
        return;
    }
    let opens_all = added.iter().any(|r| open_rule(r, peers));
    ctx.add(
        "network-policy-opened",
        FindingCategory::Security,
        Severity::High,
        Some(p),
        if opens_all {
            format!(
                "the NetworkPolicy `{}` allows all {direction} traffic in the cluster",
                ctx.input.id.name
            )
        } else {
            format!(
                "the NetworkPolicy `{}` has {} {direction} rule(s) in the cluster that Git does not",
                ctx.input.id.name,
                added.len()
            )
        },
    );
}

pub(super) fn service_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    match segs.get(1).map(String::as_str) {
        Some("type") if segs.len() == 2 => {
            let l = f
                .live
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            if matches!(l, "LoadBalancer" | "NodePort") {
                ctx.add(
                    "service-exposed",
                    FindingCategory::Security,
                    Severity::High,
                    Some(p),
                    format!(
                        "the Service `{}` is of type {l} in the cluster (Git: {}): reachable \
                         from outside the cluster",
                        ctx.input.id.name,
                        show(&f.desired)
                    ),
                );
            }
        }
        Some("externalIPs") if !strings(f.live.as_ref()).is_empty() => {
            ctx.add(
                "service-exposed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Service `{}` has external IPs in the cluster: {}",
                    ctx.input.id.name,
                    strings(f.live.as_ref()).join(", ")
                ),
            );
        }
        Some("loadBalancerSourceRanges") if f.live.is_none() => {
            ctx.add(
                "service-exposed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Service `{}` lost its load balancer source ranges in the cluster: open to any address",
                    ctx.input.id.name
                ),
            );
        }
        _ => {}
    }
}

pub(super) fn ingress_routes(v: Option<&Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for rule in list(v) {
        let host = rule.get("host").and_then(Value::as_str).unwrap_or("*");
        let paths = rule.get("http").and_then(|h| h.get("paths"));
        let ps = list(paths);
        if ps.is_empty() {
            out.insert(host.to_owned());
        }
        for p in ps {
            let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
            out.insert(format!("{host}{path}"));
        }
    }
    out
}

pub(super) fn ingress_field(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let p = &f.path;
    match segs.get(1).map(String::as_str) {
        Some("rules") => {
            let d = ingress_routes(f.desired.as_ref());
            let added: Vec<String> = ingress_routes(f.live.as_ref())
                .into_iter()
                .filter(|r| !d.contains(r))
                .collect();
            if !added.is_empty() {
                ctx.add(
                    "ingress-widened",
                    FindingCategory::Security,
                    Severity::Medium,
                    Some(p),
                    format!(
                        "the Ingress `{}` routes more in the cluster than in Git: {}",
                        ctx.input.id.name,
                        added.join(", ")
                    ),
                );
            }
        }
        Some("tls") if f.desired.is_some() && f.live.is_none() => {
            ctx.add(
                "ingress-tls-removed",
                FindingCategory::Security,
                Severity::High,
                Some(p),
                format!(
                    "the Ingress `{}` lost its TLS settings in the cluster: traffic in clear text",
                    ctx.input.id.name
                ),
            );
        }
        _ => {}
    }
}
