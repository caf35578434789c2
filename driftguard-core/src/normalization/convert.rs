//! Known conversions between API versions, for when Git and the cluster disagree on the version
//! (e.g. a live dump taken with `kubectl get`, which returns each kind's preferred version).

use serde_json::Value;

/// Converts normalized desired `content` from `from` to `to` for kind `kind`, when a
/// conversion is known. Returns `None` when none is.
pub fn convert(kind: &str, from: &str, to: &str, content: &Value) -> Option<Value> {
    if from == to {
        return None;
    }
    match (kind, from, to) {
        ("HorizontalPodAutoscaler", "autoscaling/v2beta2" | "autoscaling/v2", "autoscaling/v1") => {
            hpa_v2_to_v1(content, |m| {
                m.get("resource")?
                    .get("target")?
                    .get("averageUtilization")
                    .cloned()
            })
        }
        ("HorizontalPodAutoscaler", "autoscaling/v2beta1", "autoscaling/v1") => {
            hpa_v2_to_v1(content, |m| {
                m.get("resource")?.get("targetAverageUtilization").cloned()
            })
        }
        _ => None,
    }
}

fn hpa_v2_to_v1(content: &Value, target: impl Fn(&Value) -> Option<Value>) -> Option<Value> {
    let mut out = content.clone();
    let spec = out.get_mut("spec")?.as_object_mut()?;
    let metrics = spec.remove("metrics");
    let mut cpu = None;
    if let Some(Value::Array(items)) = &metrics {
        for m in items {
            let is_cpu = m.get("type").and_then(Value::as_str) == Some("Resource")
                && m.get("resource")
                    .and_then(|r| r.get("name"))
                    .and_then(Value::as_str)
                    == Some("cpu");
            if is_cpu {
                cpu = target(m);
            }
        }
    }
    spec.remove("behavior");
    if let Some(cpu) = cpu {
        spec.insert("targetCPUUtilizationPercentage".into(), cpu);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn hpa_v2beta2_to_v1() {
        let d = json!({"spec": {"minReplicas": 3, "maxReplicas": 10,
            "scaleTargetRef": {"kind": "Deployment", "name": "web"},
            "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": 60}}}]}});
        let v1 = convert(
            "HorizontalPodAutoscaler",
            "autoscaling/v2beta2",
            "autoscaling/v1",
            &d,
        )
        .expect("known conversion");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], json!(60));
        assert!(v1["spec"].get("metrics").is_none());
        assert!(convert("Deployment", "apps/v1", "apps/v1beta1", &d).is_none());
    }
}
