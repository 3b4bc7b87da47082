# Helpers sourced by the provisioning scripts (from the copy of the repo in /opt/gaia/src on a
# VM, from the checkout for `gaia lab`).

# The templates beside this script, wherever the repository is.
TEMPLATES=${TEMPLATES:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../templates" && pwd)}
# bash 5.2: '&' in a replacement would mean the matched text; values are taken literally.
shopt -u patsub_replacement 2>/dev/null || true

# render TEMPLATE DEST: copy TEMPLATE to DEST with every @GAIA_*@ replaced by the value of
# that environment variable; fails when one is unset, so no file is left half rendered.
render() {
    local template="$TEMPLATES/$1" dest="$2" name text
    text=$(cat "$template")
    for name in $(grep -o '@GAIA_[A-Z_]*@' "$template" | sort -u | tr -d @); do
        if [ -z "${!name:-}" ]; then
            echo "render $1: $name is not set" >&2
            return 1
        fi
        text=${text//@$name@/${!name}}
    done
    install -d "$(dirname "$dest")"
    printf '%s\n' "$text" > "$dest.tmp"
    mv "$dest.tmp" "$dest"
}
