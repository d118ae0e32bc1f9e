//! Shell completion of what is in the cluster: `skiff completion bash` appends
//! [`BASH_OBJECTS`] to clap's script, which asks the hidden `skiff __complete [TYPE]` for
//! resource types and object names (as kubectl's completion asks `kubectl get`).

use skiff_api::Kind;
use skiff_client::{Client, ListParams};

use crate::target::parse_kind;
use crate::verbs::VerbError;

/// The resource types, one a line: kubectl's plural names.
pub fn types() -> String {
    Kind::ALL
        .iter()
        .map(|k| format!("{}\n", k.plural()))
        .collect()
}

/// The names of the objects of `kind` (in `namespace` when namespaced), one a line.
pub async fn names(client: &Client, kind: &str, namespace: &str) -> Result<String, VerbError> {
    let kind = parse_kind(kind)?;
    let params = if kind.is_namespaced() {
        ListParams::namespace(namespace)
    } else {
        ListParams::all_namespaces()
    };
    let objects = client.list_objects(kind, &params).await?.items;
    Ok(objects
        .iter()
        .map(|o| format!("{}\n", o.metadata().name))
        .collect())
}

/// Bash completion of types and names for the verbs that take objects, on top of clap's
/// `_skiff` (flags and verbs). The global flags typed so far (--server, --config, --token,
/// -n) are passed on to `skiff __complete`, so it asks the same cluster and namespace.
pub const BASH_OBJECTS: &str = r#"
_skiff_objects() {
    local cur="${COMP_WORDS[COMP_CWORD]}" i word words=() globals=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word="${COMP_WORDS[i]}"
        case "$word" in
            -n|--namespace|--server|--config|--token)
                globals+=("$word" "${COMP_WORDS[i+1]}"); ((i++)); continue ;;
            --namespace=*|--server=*|--config=*|--token=*) globals+=("$word"); continue ;;
            -*) continue ;;
        esac
        words+=("$word")
    done
    local verb="${words[0]}"
    case "$verb" in
        get|describe|delete|label|annotate|wait|scale|logs|exec|port-forward) ;;
        *) _skiff "$@"; return ;;
    esac
    if [[ "$cur" == -* ]]; then _skiff "$@"; return; fi
    local complete=(skiff "${globals[@]}" __complete)
    if ((${#words[@]} == 1)); then
        case "$verb" in
            logs|exec|port-forward)
                COMPREPLY=($(compgen -W "$("${complete[@]}" pods 2>/dev/null)" -- "$cur"))
                return ;;
        esac
        if [[ "$cur" == */* ]]; then
            local type="${cur%%/*}"
            COMPREPLY=($(compgen -P "$type/" -W "$("${complete[@]}" "$type" 2>/dev/null)" -- "${cur#*/}"))
        else
            COMPREPLY=($(compgen -W "$("${complete[@]}" 2>/dev/null)" -- "$cur"))
        fi
    elif [[ "${words[1]}" != */* ]]; then
        COMPREPLY=($(compgen -W "$("${complete[@]}" "${words[1]%%,*}" 2>/dev/null)" -- "$cur"))
    fi
}
complete -F _skiff_objects -o bashdefault -o default skiff
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_are_kubectls_plural_names() {
        assert_eq!(types(), "namespaces\npods\ndeployments\nnodes\nevents\n");
    }
}
