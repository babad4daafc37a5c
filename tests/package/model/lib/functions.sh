# Test model of OpenWrt's /lib/functions.sh (package/base-files/files/lib/functions.sh):
# the UCI shell state (CONFIG_<section>_<option> variables filled by evaluating
# `uci export` through config/option/list), config_get/_bool, config_foreach,
# config_list_foreach, append/list_contains and user_exists. Same observable behaviour,
# written for tests/package. MODEL_DIR is where the model files are; MODEL_ROOT prefixes
# /etc/passwd (the real file uses IPKG_INSTROOT, which
# also switches config_load off there).

N="
"
NO_EXPORT=1
LOAD_STATE=1
LIST_SEP=" "

append() {
	local var=$1 value=$2 sep=${3:- }
	eval "$var=\${$var:+\${$var}\${value:+\$sep}}\$value"
}

list_contains() {
	local var=$1 str=$2 val
	eval "val=\" \${$var} \""
	[ "${val%% $str *}" != "$val" ]
}

config_load() {
	uci_load "$@"
}

reset_cb() {
	config_cb() { return 0; }
	option_cb() { return 0; }
	list_cb() { return 0; }
}
reset_cb

package() { return 0; }

config() {
	local cfgtype=$1 name=$2
	CONFIG_NUM_SECTIONS=$((CONFIG_NUM_SECTIONS + 1))
	name=${name:-cfg$CONFIG_NUM_SECTIONS}
	append CONFIG_SECTIONS "$name"
	CONFIG_SECTION=$name
	config_set "$CONFIG_SECTION" TYPE "$cfgtype"
	[ -n "$NO_CALLBACK" ] || config_cb "$cfgtype" "$name"
}

option() {
	local varname=$1
	shift
	config_set "$CONFIG_SECTION" "$varname" "$*"
	[ -n "$NO_CALLBACK" ] || option_cb "$varname" "$*"
}

# A list keeps <opt>_ITEMn and <opt>_LENGTH, and the items joined by LIST_SEP in <opt>.
list() {
	local varname=$1 len
	shift
	config_get len "$CONFIG_SECTION" "${varname}_LENGTH" 0
	[ "$len" = 0 ] && append CONFIG_LIST_STATE "${CONFIG_SECTION}_${varname}"
	len=$((len + 1))
	config_set "$CONFIG_SECTION" "${varname}_ITEM$len" "$*"
	config_set "$CONFIG_SECTION" "${varname}_LENGTH" "$len"
	append "CONFIG_${CONFIG_SECTION}_${varname}" "$*" "$LIST_SEP"
	[ -n "$NO_CALLBACK" ] || list_cb "$varname" "$*"
}

config_set() {
	eval "CONFIG_${1}_${2}=\$3"
}

config_unset() {
	config_set "$1" "$2" ""
}

# config_get <variable> <section> <option> [<default>] | config_get <section> <option>
config_get() {
	case "$2${3:-$1}" in
	*[!A-Za-z0-9_]*) : ;;
	*)
		case "$3" in
		"") eval echo "\"\${CONFIG_${1}_${2}:-\${4}}\"" ;;
		*) eval "${1}=\${CONFIG_${2}_${3}:-\${4}}" ;;
		esac
		;;
	esac
}

get_bool() {
	local v=$1
	case "$v" in
	1 | on | true | yes | enabled) v=1 ;;
	0 | off | false | no | disabled) v=0 ;;
	*) v=$2 ;;
	esac
	echo -n "$v"
}

config_get_bool() {
	local _tmp
	config_get _tmp "$2" "$3" "$4"
	_tmp=$(get_bool "$_tmp" "$4")
	eval "$1=\$_tmp"
}

config_foreach() {
	local ___function=$1 ___type section cfgtype
	[ "$#" -ge 1 ] && shift
	___type=$1
	[ "$#" -ge 1 ] && shift
	[ -z "$CONFIG_SECTIONS" ] && return 0
	for section in ${CONFIG_SECTIONS}; do
		config_get cfgtype "$section" TYPE
		[ -n "$___type" ] && [ "x$cfgtype" != "x$___type" ] && continue
		eval "$___function \"\$section\" \"\$@\""
	done
}

config_list_foreach() {
	[ "$#" -ge 3 ] || return 0
	local section=$1 option=$2 function=$3 val len c=1
	shift 3
	config_get len "$section" "${option}_LENGTH"
	[ -z "$len" ] && return 0
	while [ "$c" -le "$len" ]; do
		config_get val "$section" "${option}_ITEM$c"
		eval "$function \"\$val\" \"\$@\""
		c=$((c + 1))
	done
}

user_exists() {
	grep -qs "^${1}:" "${MODEL_ROOT}/etc/passwd"
}

group_exists() {
	grep -qs "^${1}:" "${MODEL_ROOT}/etc/group"
}

[ -f "$MODEL_DIR/lib/config/uci.sh" ] && . "$MODEL_DIR/lib/config/uci.sh"
true
