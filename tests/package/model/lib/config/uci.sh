# Test model of OpenWrt's /lib/config/uci.sh: uci_load evaluates `uci -S -n export PKG`
# (the model uci in $MODEL_DIR/bin) into functions.sh state; uci_get reads one value.

CONFIG_APPEND=

uci_load() {
	local PACKAGE=$1 DATA RET VAR
	if [ -z "$CONFIG_APPEND" ]; then
		for VAR in $CONFIG_LIST_STATE; do
			eval "CONFIG_${VAR}="
			eval "CONFIG_${VAR}_LENGTH="
		done
		CONFIG_LIST_STATE=
		CONFIG_SECTIONS=
		CONFIG_NUM_SECTIONS=0
		CONFIG_SECTION=
	fi
	DATA=$(uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -S -n export "$PACKAGE" 2>/dev/null)
	RET=$?
	[ "$RET" != 0 ] || [ -z "$DATA" ] || eval "$DATA"
	unset DATA
	${CONFIG_SECTION:+config_cb}
	return "$RET"
}

# uci_get <package> [<section> [<option> [<default>]]]
uci_get() {
	local PACKAGE=$1 CONFIG=$2 OPTION=$3 DEFAULT=$4
	uci ${UCI_CONFIG_DIR:+-c "$UCI_CONFIG_DIR"} -q get "$PACKAGE${CONFIG:+.$CONFIG}${OPTION:+.$OPTION}" || {
		[ -n "$DEFAULT" ] && echo "$DEFAULT"
		return 1
	}
}
