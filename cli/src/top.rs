//! `skiff top nodes|pods`: CPU and memory in `kubectl top`'s format, from what the agents'
//! cgroup samplers measured (gathered by the control plane, as metrics-server does).

use clap::Subcommand;
use skiff_api::proto::{NodeMetrics, PodUsage};
use skiff_client::Client;

use crate::table::Table;

#[derive(Subcommand)]
pub enum TopVerb {
    /// CPU (cores) and memory (bytes) of nodes, and their share of what the node offers.
    ///
    /// Examples: skiff top nodes; skiff top node host-1; skiff top nodes -l zone=a
    #[command(visible_alias = "node", alias = "no")]
    Nodes {
        /// Only this node.
        name: Option<String>,
        /// Label selector (=, ==, !=, in, notin, exists, !exists).
        #[arg(short = 'l', long)]
        selector: Option<String>,
    },
    /// CPU (cores) and memory (bytes) of running pods, from their containers' cgroups (the
    /// oci runtime's; pods of the process runtime have no figures).
    ///
    /// Examples: skiff top pods; skiff top pods -A; skiff top pod web-1 -n team-a
    #[command(visible_alias = "pod", alias = "po")]
    Pods {
        /// Only this pod.
        name: Option<String>,
        /// Label selector (=, ==, !=, in, notin, exists, !exists).
        #[arg(short = 'l', long)]
        selector: Option<String>,
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
}

/// Runs `skiff top`: the table to print.
pub async fn top(client: &Client, verb: &TopVerb, namespace: &str) -> anyhow::Result<String> {
    match verb {
        TopVerb::Nodes { name, selector } => {
            let mut nodes = client.top_nodes(selector.as_deref().unwrap_or("")).await?;
            if let Some(name) = name {
                nodes.retain(|n| n.name == *name);
                if nodes.is_empty() {
                    anyhow::bail!("nodes \"{name}\" not found");
                }
            }
            if nodes.is_empty() {
                return Ok("No resources found\n".into());
            }
            Ok(nodes_table(&nodes).render())
        }
        TopVerb::Pods {
            name,
            selector,
            all_namespaces,
        } => {
            let scope = if *all_namespaces { "" } else { namespace };
            let mut pods = client
                .top_pods(scope, selector.as_deref().unwrap_or(""))
                .await?;
            if let Some(name) = name {
                pods.retain(|p| p.name == *name);
                if pods.is_empty() {
                    anyhow::bail!("metrics not available yet for pod {namespace}/{name}");
                }
            }
            if pods.is_empty() {
                return Ok(if *all_namespaces {
                    "No resources found\n".into()
                } else {
                    format!("No resources found in {namespace} namespace.\n")
                });
            }
            Ok(pods_table(&pods, *all_namespaces).render())
        }
    }
}

/// CPU as kubectl top shows it: millicores with an `m`.
pub fn cpu(millicores: u64) -> String {
    format!("{millicores}m")
}

/// Memory as kubectl top shows it: whole mebibytes with `Mi`.
pub fn memory(bytes: u64) -> String {
    format!("{}Mi", bytes / (1024 * 1024))
}

/// `part` of `whole` in whole percent; `<unknown>` when the whole is not known.
fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "<unknown>".into();
    }
    format!("{}%", (part as u128 * 100 / whole as u128))
}

/// `NAME CPU(cores) CPU% MEMORY(bytes) MEMORY%`, `<unknown>` for a node without figures.
pub fn nodes_table(nodes: &[NodeMetrics]) -> Table {
    let rows = nodes
        .iter()
        .map(|n| {
            if !n.available {
                let unknown = || "<unknown>".to_string();
                return vec![n.name.clone(), unknown(), unknown(), unknown(), unknown()];
            }
            vec![
                n.name.clone(),
                cpu(n.cpu_millicores),
                percent(n.cpu_millicores, n.cpu_allocatable_millicores),
                memory(n.memory_bytes),
                percent(n.memory_bytes, n.memory_allocatable_bytes),
            ]
        })
        .collect();
    Table::new(
        &["NAME", "CPU(cores)", "CPU%", "MEMORY(bytes)", "MEMORY%"],
        rows,
    )
}

/// `[NAMESPACE] NAME CPU(cores) MEMORY(bytes)`.
pub fn pods_table(pods: &[PodUsage], namespaces: bool) -> Table {
    let rows = pods
        .iter()
        .map(|p| {
            let mut row = vec![
                p.name.clone(),
                cpu(p.cpu_millicores),
                memory(p.memory_bytes),
            ];
            if namespaces {
                row.insert(0, p.namespace.clone());
            }
            row
        })
        .collect();
    let header: &[&str] = if namespaces {
        &["NAMESPACE", "NAME", "CPU(cores)", "MEMORY(bytes)"]
    } else {
        &["NAME", "CPU(cores)", "MEMORY(bytes)"]
    };
    Table::new(header, rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_nodes_prints_kubectl_tops_columns_and_unknown_for_a_silent_node() {
        let nodes = [
            NodeMetrics {
                name: "host-1".into(),
                cpu_millicores: 250,
                memory_bytes: 512 * 1024 * 1024,
                cpu_allocatable_millicores: 2000,
                memory_allocatable_bytes: 4096 * 1024 * 1024,
                available: true,
            },
            NodeMetrics {
                name: "host-2".into(),
                available: false,
                ..NodeMetrics::default()
            },
        ];
        assert_eq!(
            nodes_table(&nodes).render(),
            "NAME     CPU(cores)   CPU%        MEMORY(bytes)   MEMORY%\n\
             host-1   250m         12%         512Mi           12%\n\
             host-2   <unknown>    <unknown>   <unknown>       <unknown>\n"
        );
    }

    #[test]
    fn top_pods_prints_millicores_and_mebibytes_with_namespaces_for_all() {
        let pods = [PodUsage {
            namespace: "team-a".into(),
            name: "spin".into(),
            cpu_millicores: 1003,
            memory_bytes: 64 * 1024 * 1024 + 5,
        }];
        assert_eq!(
            pods_table(&pods, false).render(),
            "NAME   CPU(cores)   MEMORY(bytes)\nspin   1003m        64Mi\n"
        );
        assert_eq!(
            pods_table(&pods, true).render(),
            "NAMESPACE   NAME   CPU(cores)   MEMORY(bytes)\nteam-a      spin   1003m        64Mi\n"
        );
    }
}
