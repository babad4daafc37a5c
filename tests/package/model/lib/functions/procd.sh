# Test model of OpenWrt's /lib/functions/procd.sh (package/system/procd/files/procd.sh).
# It builds the same `ubus call service set|add` message from the same calls: a service
# object with "instances" (command, respawn with the system.@service[0] defaults or
# 3600 5 5, env/data/limits tables, user, capabilities, stdout/stderr booleans, jail),
# "triggers" (config.change, interface.*, raw), "validate" (from validate_data with an
# empty section) and "data". The message goes to the model `ubus`, which records it.
# Written for tests/package from the documented behaviour; not a copy of procd.sh.

. "$MODEL_DIR/usr/share/libubox/jshn.sh"

PROCD_RELOAD_DELAY=1000
_procd_trigger_open=0
_procd_data_open=0

procd_lock() { :; }

# Run a procd builder inside the "procd" JSON namespace, like the real wrappers.
_procd_call() {
	local old_ns
	json_set_namespace procd old_ns
	"$@"
	json_set_namespace "$old_ns"
}

_procd_wrap() {
	local fn
	for fn in "$@"; do
		eval "$fn() { _procd_call _$fn \"\$@\"; }"
	done
}

_procd_ubus_call() {
	ubus call service "$1" "$(json_dump)"
	json_cleanup
}

_procd_open_service() {
	_PROCD_SERVICE=$1
	_PROCD_INSTANCE_SEQ=0
	json_init
	json_add_string name "$1"
	[ -n "$2" ] && json_add_string script "$2"
	json_add_object instances
}

_procd_close_service() {
	json_close_object
	_procd_open_trigger
	service_triggers
	_procd_close_trigger
	type service_data >/dev/null 2>&1 && {
		_procd_open_data
		service_data
		_procd_close_data
	}
	_procd_ubus_call "${1:-set}"
}

_procd_add_array_data() {
	while [ "$#" -gt 0 ]; do
		json_add_string "" "$1"
		shift
	done
}

_procd_add_array() {
	json_add_array "$1"
	shift
	_procd_add_array_data "$@"
	json_close_array
}

# KEY=VALUE arguments; a bare KEY gets an empty value.
_procd_add_table_data() {
	local key value
	while [ -n "$1" ]; do
		key=${1%%=*}
		value=${1#*=}
		[ "$1" = "$value" ] && value=
		json_add_string "$key" "$value"
		shift
	done
}

_procd_add_table() {
	json_add_object "$1"
	shift
	_procd_add_table_data "$@"
	json_close_object
}

_procd_open_instance() {
	_PROCD_INSTANCE_SEQ=$((_PROCD_INSTANCE_SEQ + 1))
	json_add_object "${1:-instance$_PROCD_INSTANCE_SEQ}"
}

_procd_open_trigger() {
	_procd_trigger_open=$((_procd_trigger_open + 1))
	[ "$_procd_trigger_open" -gt 1 ] && return
	json_add_array triggers
}

_procd_close_trigger() {
	_procd_trigger_open=$((_procd_trigger_open - 1))
	[ "$_procd_trigger_open" -lt 1 ] || return
	json_close_array
}

_procd_open_data() {
	_procd_data_open=$((_procd_data_open + 1))
	[ "$_procd_data_open" -gt 1 ] && return
	json_add_object data
}

_procd_close_data() {
	_procd_data_open=$((_procd_data_open - 1))
	[ "$_procd_data_open" -lt 1 ] || return
	json_close_object
}

_procd_open_validate() {
	json_select ..
	json_add_array validate
}

_procd_close_validate() {
	json_close_array
	json_select triggers
}

_procd_add_jail() {
	local opt
	json_add_object jail
	json_add_string name "$1"
	shift
	for opt in "$@"; do
		case "$opt" in
		log | ubus | udebug | procfs | sysfs | ronly | requirejail | netns | userns | cgroupsns)
			json_add_boolean "$opt" 1
			;;
		esac
	done
	json_add_object mount
	json_close_object
	json_close_object
}

# mode: 0 read-only, 1 read-write
_procd_jail_mount() {
	local mode=$1 path _json_no_warning=1
	shift
	json_select jail || return
	json_select mount || {
		json_select ..
		return
	}
	for path in "$@"; do
		json_add_string "$path" "$mode"
	done
	json_select ..
	json_select ..
}

_procd_add_jail_mount() { _procd_jail_mount 0 "$@"; }
_procd_add_jail_mount_rw() { _procd_jail_mount 1 "$@"; }

_procd_set_param() {
	local type=$1
	shift
	case "$type" in
	env | data | limits) _procd_add_table "$type" "$@" ;;
	command | netdev | file | respawn | watch | watchdog) _procd_add_array "$type" "$@" ;;
	error)
		json_add_array "$type"
		json_add_string "" "$*"
		json_close_array
		;;
	nice | term_timeout) json_add_int "$type" "$1" ;;
	reload_signal) json_add_int "$type" "$(kill -l "$1")" ;;
	pidfile | user | group | seccomp | capabilities | facility | extroot | overlaydir | tmpoverlaysize | vrf)
		json_add_string "$type" "$1"
		;;
	stdout | stderr | no_new_privs) json_add_boolean "$type" "$1" ;;
	esac
}

_procd_append_param() {
	local type=$1 _json_no_warning=1
	shift
	json_select "$type" || {
		_procd_set_param "$type" "$@"
		return
	}
	case "$type" in
	env | data | limits) _procd_add_table_data "$@" ;;
	command | netdev | file | respawn | watch | watchdog) _procd_add_array_data "$@" ;;
	error) json_add_string "" "$*" ;;
	esac
	json_select ..
}

_procd_close_instance() {
	local values threshold timeout retry _json_no_warning=1
	if json_select respawn; then
		json_get_values values
		if [ -z "$values" ]; then
			threshold=$(uci_get system.@service[0].respawn_threshold)
			timeout=$(uci_get system.@service[0].respawn_timeout)
			retry=$(uci_get system.@service[0].respawn_retry)
			_procd_add_array_data "${threshold:-3600}" "${timeout:-5}" "${retry:-5}"
		fi
		json_select ..
	fi
	json_close_object
}

_procd_add_instance() {
	_procd_open_instance
	_procd_set_param command "$@"
	_procd_close_instance
}

_procd_add_timeout() {
	[ "$PROCD_RELOAD_DELAY" -gt 0 ] && json_add_int "" "$PROCD_RELOAD_DELAY"
	return 0
}

# [event, ["if", ["eq", key, value], ["run_script", cmd...]], delay]
_procd_add_eq_trigger() {
	local event=$1 key=$2 value=$3
	shift 3
	json_add_array
	_procd_add_array_data "$event"
	json_add_array
	_procd_add_array_data if
	json_add_array
	_procd_add_array_data eq "$key" "$value"
	json_close_array
	json_add_array
	_procd_add_array_data run_script "$@"
	json_close_array
	json_close_array
	_procd_add_timeout
	json_close_array
}

_procd_script_name() {
	local script
	script=$(readlink "$initscript")
	basename "${script:-$initscript}"
}

_procd_add_interface_trigger() {
	local event=$1 iface=$2
	shift 2
	_procd_add_eq_trigger "$event" interface "$iface" "$@"
}

_procd_add_reload_interface_trigger() {
	_procd_open_trigger
	_procd_add_interface_trigger "interface.*" "$1" "/etc/init.d/$(_procd_script_name)" reload
	_procd_close_trigger
}

_procd_add_config_trigger() {
	local event=$1 package=$2
	shift 2
	_procd_add_eq_trigger "$event" package "$package" "$@"
}

_procd_add_reload_trigger() {
	local file name
	name=$(_procd_script_name)
	_procd_open_trigger
	for file in "$@"; do
		_procd_add_config_trigger config.change "$file" "/etc/init.d/$name" reload
	done
	_procd_close_trigger
}

_procd_add_data_trigger() {
	local name=$1
	shift
	_procd_add_eq_trigger service.data.update name "$name" "$@"
}

_procd_add_reload_data_trigger() {
	local t name
	name=$(_procd_script_name)
	_procd_open_trigger
	for t in "$@"; do
		_procd_add_data_trigger "$t" "/etc/init.d/$name" reload
	done
	_procd_close_trigger
}

_procd_add_raw_trigger() {
	local event=$1 timeout=$2
	shift 2
	json_add_array
	_procd_add_array_data "$event"
	json_add_array
	json_add_array
	_procd_add_array_data run_script "$@"
	json_close_array
	json_close_array
	json_add_int "" "$timeout"
	json_close_array
}

_procd_add_validation() {
	_procd_open_validate
	"$@"
	_procd_close_validate
}

_procd_kill() {
	json_init
	[ -n "$1" ] && json_add_string name "$1"
	[ -n "$2" ] && json_add_string instance "$2"
	_procd_ubus_call delete
}

_procd_send_signal() {
	local service=$1 instance=$2 signal=$3
	case "$signal" in
	[A-Z]*) signal=$(kill -l "$signal" 2>/dev/null) || return 1 ;;
	esac
	json_init
	json_add_string name "$service"
	[ -n "$instance" ] && [ "$instance" != "*" ] && json_add_string instance "$instance"
	[ -n "$signal" ] && json_add_int signal "$signal"
	_procd_ubus_call signal
}

_procd_set_config_changed() {
	json_init
	json_add_string type config.change
	json_add_object data
	json_add_string package "$1"
	json_close_object
	ubus call service event "$(json_dump)"
}

procd_open_data() {
	json_set_namespace procd __procd_old_cb
	json_add_object data
}

procd_close_data() {
	json_close_object
	json_set_namespace "$__procd_old_cb"
}

# validate_data prints shell assignments (or, for an empty section name, json_add_*
# calls describing the schema); a failed run is repeated so its reasons reach stderr.
uci_validate_section() {
	local _package=$1 _type=$2 _name=$3 _result _error
	shift 3
	_result=$(validate_data "$_package" "$_type" "$_name" "$@" 2>/dev/null)
	_error=$?
	eval "$_result"
	[ "$_error" = 0 ] || validate_data "$_package" "$_type" "$_name" "$@" >/dev/null
	return $_error
}

uci_load_validate() {
	local _package=$1 _type=$2 _name=$3 _function=$4 _option _result
	shift 4
	for _option in "$@"; do
		eval "local ${_option%%:*}"
	done
	uci_validate_section "$_package" "$_type" "$_name" "$@"
	_result=$?
	[ -n "$_function" ] || return $_result
	eval "$_function \"\$_name\" \"\$_result\""
}

_procd_wrap \
	procd_open_service procd_close_service procd_add_instance procd_add_raw_trigger \
	procd_add_config_trigger procd_add_interface_trigger procd_add_reload_trigger \
	procd_add_reload_data_trigger procd_add_reload_interface_trigger \
	procd_open_trigger procd_close_trigger procd_open_instance procd_close_instance \
	procd_open_validate procd_close_validate procd_add_jail procd_add_jail_mount \
	procd_add_jail_mount_rw procd_set_param procd_append_param procd_add_validation \
	procd_set_config_changed procd_kill procd_send_signal
