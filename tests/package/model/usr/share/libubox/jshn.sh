# Test model of OpenWrt's /usr/share/libubox/jshn.sh: builds a JSON document in shell
# variables with the same call sequence semantics (json_init, json_add_*, json_close_*,
# json_select into an existing child or "..", json_get_values, namespaces), and
# json_dump serialises it. Written for tests/package; not a copy of libubox.
#
# Storage, per namespace prefix $_JNS: <ns>N (node counter), <ns>CUR (current node),
# and per node id: <ns>T_id (object|array|string|int|boolean), <ns>K_id (key),
# <ns>V_id (scalar value), <ns>C_id (child ids), <ns>P_id (parent id).

_JNS=J_

_jset() { eval "${_JNS}$1=\$2"; }
_jget() { eval "printf '%s' \"\${${_JNS}$1}\""; }

json_set_namespace() {
	[ -n "$2" ] && eval "$2=\$_JNS"
	_JNS=${1:-J_}
	case "$_JNS" in *_) ;; *) _JNS=${_JNS}_ ;; esac
}

json_init() {
	_jset N 1
	_jset T_1 object
	_jset C_1 ""
	_jset P_1 0
	_jset CUR 1
}

json_cleanup() { json_init; }

_json_new() { # type key value -> sets _jid
	local n cur
	n=$(($(_jget N) + 1))
	cur=$(_jget CUR)
	_jset N "$n"
	_jset "T_$n" "$1"
	_jset "K_$n" "$2"
	_jset "V_$n" "$3"
	_jset "C_$n" ""
	_jset "P_$n" "$cur"
	_jset "C_$cur" "$(_jget "C_$cur") $n"
	_jid=$n
}

json_add_object() { _json_new object "$1" ""; _jset CUR "$_jid"; }
json_add_array() { _json_new array "$1" ""; _jset CUR "$_jid"; }
json_close_object() { _jset CUR "$(_jget "P_$(_jget CUR)")"; }
json_close_array() { json_close_object; }
json_add_string() { _json_new string "$1" "$2"; }
json_add_int() { _json_new int "$1" "$2"; }
json_add_double() { _json_new int "$1" "$2"; }
json_add_boolean() { _json_new boolean "$1" "$2"; }

json_select() {
	local cur id
	cur=$(_jget CUR)
	if [ "$1" = ".." ]; then
		[ "$cur" = 1 ] && return 1
		_jset CUR "$(_jget "P_$cur")"
		return 0
	fi
	for id in $(_jget "C_$cur"); do
		[ "$(_jget "K_$id")" = "$1" ] || continue
		case "$(_jget "T_$id")" in object | array) ;; *) continue ;; esac
		_jset CUR "$id"
		return 0
	done
	[ -n "$_json_no_warning" ] || echo "WARNING: Variable '$1' does not exist or is not an array/object" >&2
	return 1
}

json_get_values() { # var: space-separated scalar values of the current container
	local id out=
	for id in $(_jget "C_$(_jget CUR)"); do
		out="${out:+$out }$(_jget "V_$id")"
	done
	eval "$1=\$out"
}

json_get_var() { # var key
	local id
	for id in $(_jget "C_$(_jget CUR)"); do
		[ "$(_jget "K_$id")" = "$2" ] || continue
		eval "$1=\$(_jget V_$id)"
		return 0
	done
	return 1
}

_json_quote() {
	printf '"%s"' "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/	/\\t/g')"
}

_json_emit() { # id in_object
	local id=$1 t sep= c
	[ "$2" = 1 ] && { _json_quote "$(_jget "K_$id")"; printf ':'; }
	t=$(_jget "T_$id")
	case "$t" in
	object | array)
		[ "$t" = object ] && printf '{' || printf '['
		for c in $(_jget "C_$id"); do
			printf '%s' "$sep"
			sep=,
			[ "$t" = object ] && _json_emit "$c" 1 || _json_emit "$c" 0
		done
		[ "$t" = object ] && printf '}' || printf ']'
		;;
	string) _json_quote "$(_jget "V_$id")" ;;
	int) printf '%s' "$(_jget "V_$id")" ;;
	boolean) [ "$(_jget "V_$id")" = 1 ] && printf true || printf false ;;
	esac
}

json_dump() {
	_json_emit 1 0
	echo
}

json_init
