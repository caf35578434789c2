//! Availability findings on a modified object: replicas, limits, probes, disruption budgets.

use super::*;

pub(super) fn replicas(ctx: &mut Ctx<'_>, f: &FieldDiff) {
    let (Some(d), Some(l)) = (
        f.desired.as_ref().and_then(Value::as_i64),
        f.live.as_ref().and_then(Value::as_i64),
    ) else {
        return;
    };
    if l == 0 && d > 0 {
        ctx.add(
            "replicas-zero",
            FindingCategory::Availability,
            Severity::High,
            Some(&f.path),
            format!("scaled to zero in the cluster (Git: {d}): nothing serves"),
        );
    } else if l > 0 && l * 2 <= d {
        ctx.add(
            "replicas-cut",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!("{l} replicas in the cluster, {d} in Git: less headroom for load or failures"),
        );
    }
}

pub(super) fn limits(ctx: &mut Ctx<'_>, f: &FieldDiff, segs: &[String]) {
    let who = container_of(segs)
        .map(|(_, n)| format!("container `{n}`"))
        .unwrap_or_else(|| "a container".to_owned());
    let resource = segs.last().map(String::as_str).unwrap_or("");
    if f.desired.is_some() && f.live.is_none() {
        ctx.add(
            "limits-removed",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!(
                "{who} has no {resource} limit in the cluster (Git: {}): it can starve its neighbours",
                show(&f.desired)
            ),
        );
        return;
    }
    let q = |v: &Option<Value>| match v {
        Some(Value::String(s)) => parse_nanos(s),
        Some(Value::Number(n)) => n.as_f64().map(|f| (f * 1e9) as i128),
        _ => None,
    };
    if let (Some(d), Some(l)) = (q(&f.desired), q(&f.live)) {
        if l > 0 && l * 2 <= d {
            ctx.add(
                "limits-cut",
                FindingCategory::Availability,
                Severity::Medium,
                Some(&f.path),
                format!(
                    "{who}'s {resource} limit was cut to {} in the cluster (Git: {}): throttling or OOM kills likely",
                    show(&f.live),
                    show(&f.desired)
                ),
            );
        }
    }
}

/// `probe-removed`: a probe Git defines is gone live (its fields all absent live).
pub(super) fn probes_removed(ctx: &mut Ctx<'_>) {
    let mut seen: BTreeSet<FieldPath> = BTreeSet::new();
    let fields = ctx.input.fields;
    for f in fields {
        let segs = segments(&f.path);
        let Some(i) = segs.iter().position(|s| {
            matches!(
                s.as_str(),
                "livenessProbe" | "readinessProbe" | "startupProbe"
            )
        }) else {
            continue;
        };
        let prefix = join(&segs[..=i]);
        if !seen.insert(prefix.clone()) {
            continue;
        }
        let under: Vec<&FieldDiff> = fields
            .iter()
            .filter(|g| g.path.is_within(&prefix))
            .collect();
        let gone_in_diff = under
            .iter()
            .all(|g| g.live.is_none() && g.desired.is_some());
        let gone_live = match ctx.live() {
            Some(l) => value_at(l, &segs[..=i]).is_none(),
            None => true,
        };
        if gone_in_diff && gone_live {
            let who = container_of(&segs)
                .map(|(_, n)| format!("container `{n}`"))
                .unwrap_or_else(|| "a container".to_owned());
            ctx.add(
                "probe-removed",
                FindingCategory::Availability,
                Severity::Medium,
                Some(&prefix),
                format!(
                    "{who} lost its {} in the cluster: failures go unnoticed",
                    segs[i]
                ),
            );
        }
    }
}

/// An int or a percentage, as a comparable fraction in percent points for percentages.
pub(super) fn int_or_percent(v: &Option<Value>) -> Option<(bool, i64)> {
    match v {
        Some(Value::Number(n)) => n.as_i64().map(|i| (false, i)),
        Some(Value::String(s)) => match s.strip_suffix('%') {
            Some(p) => p.parse().ok().map(|i| (true, i)),
            None => s.parse().ok().map(|i| (false, i)),
        },
        _ => None,
    }
}

pub(super) fn pdb_field(ctx: &mut Ctx<'_>, f: &FieldDiff, last: &str) {
    let d = int_or_percent(&f.desired);
    let l = int_or_percent(&f.live);
    let loosened = match (last, d, l) {
        ("minAvailable", Some(_), None) => true,
        ("minAvailable", Some((dp, dv)), Some((lp, lv))) => dp == lp && lv < dv,
        ("maxUnavailable", Some((dp, dv)), Some((lp, lv))) => dp == lp && lv > dv,
        _ => false,
    };
    if loosened {
        ctx.add(
            "pdb-loosened",
            FindingCategory::Availability,
            Severity::Medium,
            Some(&f.path),
            format!(
                "the PodDisruptionBudget `{}` allows more disruption in the cluster ({last}: {}, Git: {})",
                ctx.input.id.name,
                show(&f.live),
                show(&f.desired)
            ),
        );
    }
}
