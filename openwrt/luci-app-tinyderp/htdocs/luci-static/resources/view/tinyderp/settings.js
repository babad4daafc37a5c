'use strict';
'require view';
'require form';
'require tinyderp.options as options';

// The form over /etc/config/tinyderp. Its options, datatypes, defaults and tabs come from
// tinyderp/options.js, generated from the option table the init script's validation is
// generated from too, so the form checks what validate_data checks. LuCI has no `bool`
// datatype: boolean options are checkboxes. Save & Apply commits through LuCI's apply,
// which runs reload_config: procd reloads the service with the new command line.

function widget(s, opt) {
	let o;
	if (opt.kind == 'switch' || opt.datatype == 'bool') {
		o = s.taboption(opt.group, form.Flag, opt.name, opt.name, opt.summary);
		o.default = (opt.default == '1') ? o.enabled : o.disabled;
		o.rmempty = false;
		return o;
	}
	if (opt.kind == 'list')
		o = s.taboption(opt.group, form.DynamicList, opt.name, opt.name, opt.summary);
	else
		o = s.taboption(opt.group, form.Value, opt.name, opt.name, opt.summary);
	if (opt.datatype && opt.datatype != 'string')
		o.datatype = opt.datatype;
	if (opt.default != null)
		o.placeholder = opt.default;
	o.rmempty = true;
	return o;
}

return view.extend({
	render: function() {
		const m = new form.Map('tinyderp', _('DERP relay settings'),
			_('Every option of /etc/config/tinyderp. Empty fields use the default shown in grey. Save & Apply restarts the relay with the new options.'));
		const s = m.section(form.NamedSection, 'main', 'tinyderp');
		s.addremove = false;
		for (const g of options.groups)
			s.tab(g[0], g[1]);
		for (const opt of options.options)
			widget(s, opt);
		return m.render();
	}
});
