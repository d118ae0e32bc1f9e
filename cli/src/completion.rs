//! Shell completion of what is in the cluster: `skiff completion bash|zsh|fish` appends
//! [`BASH_OBJECTS`], [`ZSH_OBJECTS`] or [`FISH_OBJECTS`] to clap's script, which ask the
//! hidden `skiff __complete [TYPE]` for resource types and object names (as kubectl's
//! completion asks `kubectl get`). Each finds the verb and the objects typed so far the
//! same way: words that are not flags, skipping the values of the global flags, which it
//! passes on so that `__complete` asks the same cluster and namespace.

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

/// Zsh completion of types and names, on top of clap's `_skiff`: the same rules as
/// [`BASH_OBJECTS`], with zsh's `words`/`CURRENT` and `compadd`.
pub const ZSH_OBJECTS: &str = r#"
_skiff_objects() {
    local i word cur="${words[CURRENT]}"
    local -a typed globals complete candidates
    for ((i = 2; i < CURRENT; i++)); do
        word="${words[i]}"
        case "$word" in
            -n|--namespace|--server|--config|--token)
                globals+=("$word" "${words[i+1]}"); ((i++)); continue ;;
            --namespace=*|--server=*|--config=*|--token=*) globals+=("$word"); continue ;;
            -*) continue ;;
        esac
        typed+=("$word")
    done
    case "${typed[1]}" in
        get|describe|delete|label|annotate|wait|scale|logs|exec|port-forward) ;;
        *) _skiff "$@"; return ;;
    esac
    if [[ "$cur" == -* ]]; then _skiff "$@"; return; fi
    complete=(skiff "${globals[@]}" __complete)
    if (( ${#typed} == 1 )); then
        case "${typed[1]}" in
            logs|exec|port-forward)
                candidates=(${(f)"$("${complete[@]}" pods 2>/dev/null)"})
                compadd -a candidates; return ;;
        esac
        if [[ "$cur" == */* ]]; then
            local type="${cur%%/*}"
            compset -P '*/'
            candidates=(${(f)"$("${complete[@]}" "$type" 2>/dev/null)"})
        else
            candidates=(${(f)"$("${complete[@]}" 2>/dev/null)"})
        fi
        compadd -a candidates
    elif [[ "${typed[2]}" != */* ]]; then
        candidates=(${(f)"$("${complete[@]}" "${typed[2]%%,*}" 2>/dev/null)"})
        compadd -a candidates
    fi
}
compdef _skiff_objects skiff
"#;

/// Fish completion of types and names beside clap's: the same rules as [`BASH_OBJECTS`],
/// offered only where a verb that takes objects expects one (elsewhere clap's completions,
/// files included, stay as they are).
pub const FISH_OBJECTS: &str = r#"
function __skiff_typed
    set -l tokens (commandline -opc)
    set -l skip 0
    for i in (seq 2 (count $tokens))
        if test $skip -eq 1
            set skip 0
            continue
        end
        switch $tokens[$i]
            case -n --namespace --server --config --token
                set skip 1
            case '-*'
            case '*'
                echo $tokens[$i]
        end
    end
end

function __skiff_globals
    set -l tokens (commandline -opc)
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case -n --namespace --server --config --token
                echo $tokens[$i]
                set -l next (math $i + 1)
                test $next -le (count $tokens); and echo $tokens[$next]
            case '--namespace=*' '--server=*' '--config=*' '--token=*'
                echo $tokens[$i]
        end
    end
end

function __skiff_wants_objects
    set -l typed (__skiff_typed)
    contains -- "$typed[1]" get describe delete label annotate wait scale logs exec port-forward
    or return 1
    not string match -q -- '-*' (commandline -ct)
end

function __skiff_objects
    set -l typed (__skiff_typed)
    set -l cur (commandline -ct)
    set -l complete skiff (__skiff_globals) __complete
    if test (count $typed) -eq 1
        if contains -- $typed[1] logs exec port-forward
            $complete pods 2>/dev/null
        else if string match -q -- '*/*' $cur
            set -l type (string split -m1 / -- $cur)[1]
            $complete $type 2>/dev/null | string replace -r '^' "$type/"
        else
            $complete 2>/dev/null
        end
    else if not string match -q -- '*/*' $typed[2]
        $complete (string split -m1 , -- $typed[2])[1] 2>/dev/null
    end
end

complete -c skiff -n __skiff_wants_objects -f -a '(__skiff_objects)'
"#;

/// What `skiff completion SHELL` appends to clap's script: the completion of objects, for
/// the shells that have one.
pub fn objects_script(shell: clap_complete::Shell) -> &'static str {
    match shell {
        clap_complete::Shell::Bash => BASH_OBJECTS,
        clap_complete::Shell::Zsh => ZSH_OBJECTS,
        clap_complete::Shell::Fish => FISH_OBJECTS,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_types_are_kubectls_plural_names() {
        assert_eq!(types(), "namespaces\npods\ndeployments\nnodes\nevents\n");
    }
}
