# apt.sh — sourced by the setup scripts: install Debian packages that are
# missing, idempotently. The sourcing script defines log().
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

# apt_ensure PKG...: install the packages not installed yet; run apt-get
# update only when the install fails (stale or missing package lists).
apt_ensure() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		log "already installed: $*"
		return
	fi
	log "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
		log "apt-get update (package lists are stale or missing)"
		$SUDO apt-get update
		$SUDO apt-get install -y --no-install-recommends "${missing[@]}"
	fi
}
