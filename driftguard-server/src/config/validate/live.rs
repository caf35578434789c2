//! An environment's live side: one of a cluster or dump files that exist; none for a
//! Terraform environment.

use super::super::{EnvironmentConfig, EnvironmentPlan, LivePlan};
use super::{check_file, Problems};

pub(super) fn check(
    problems: &mut Problems,
    at: &str,
    env: &EnvironmentConfig,
    resolved: &EnvironmentPlan,
) {
    match &env.live {
        Some(_) if env.terraform.is_some() => problems.add(
            format!("{at}.live"),
            "a Terraform environment has no `live` side: the cloud is read through terraform's plans; remove it",
        ),
        None if env.terraform.is_some() => {}
        None => problems.add(
            at,
            "no live side: set `live` (a kubeconfig/context, inCluster, or a dump)",
        ),
        Some(l) => {
            let cluster = l.kubeconfig.is_some() || l.context.is_some() || l.in_cluster;
            if l.dump.is_some() {
                if cluster {
                    problems.add(
                        format!("{at}.live.dump"),
                        "a dump and a cluster (kubeconfig/context/inCluster) are both set: choose one",
                    );
                }
                let paths = match &resolved.live {
                    LivePlan::Dump(paths) => paths.as_slice(),
                    LivePlan::Cluster(_) => &[],
                };
                if paths.is_empty() {
                    problems.add(format!("{at}.live.dump"), "names no file");
                }
                for p in paths {
                    check_file(problems, format!("{at}.live.dump"), p);
                }
            } else if l.in_cluster && (l.kubeconfig.is_some() || l.context.is_some()) {
                problems.add(
                    format!("{at}.live.inCluster"),
                    "inCluster and a kubeconfig/context are both set: choose one",
                );
            }
        }
    }
}
