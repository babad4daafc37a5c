'use strict';
'require view';
'require form';
'require rpc';
'require poll';
'require ui';
'require dom';

// Who may connect: the allowlist (a form over tinyderp.main.allowed_key) and the node keys
// learn mode refused (the relay's own bounded record, through the rpcd plugin), each with
// a button that allows it (the plugin adds the key and reloads the service).
const callRefused = rpc.declare({ object: 'luci.tinyderp', method: 'refused', expect: { '': {} } });
const callAllow = rpc.declare({ object: 'luci.tinyderp', method: 'allow', params: [ 'key' ], expect: { '': {} } });

const POLL_INTERVAL = 5;

return view.extend({
	load: function() {
		return callRefused();
	},

	renderRefused: function(data) {
		const rows = (data.refused || []).map(r => E('tr', { 'class': 'tr', 'data-key': r.key }, [
			E('td', { 'class': 'td left' }, [ E('code', {}, [ r.key ]) ]),
			E('td', { 'class': 'td left' }, [ r.address ]),
			E('td', { 'class': 'td left' }, [ r.reason ]),
			E('td', { 'class': 'td left' }, [ r.last_seen ? new Date(r.last_seen * 1000).toLocaleString() : '-' ]),
			E('td', { 'class': 'td left' }, [ String(r.count || 0) ]),
			E('td', { 'class': 'td right' }, [
				E('button', {
					'class': 'cbi-button cbi-button-add',
					'click': ui.createHandlerFn(this, 'handleAllow', r.key)
				}, [ _('Allow') ])
			])
		]));
		const table = E('table', { 'class': 'table', 'id': 'tinyderp-refused' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				E('th', { 'class': 'th' }, [ _('Node key') ]),
				E('th', { 'class': 'th' }, [ _('Address') ]),
				E('th', { 'class': 'th' }, [ _('Reason') ]),
				E('th', { 'class': 'th' }, [ _('Last seen') ]),
				E('th', { 'class': 'th' }, [ _('Times refused') ]),
				E('th', { 'class': 'th' }, [ '' ])
			])
		].concat(rows.length ? rows : [
			E('tr', { 'class': 'tr placeholder' }, [
				E('td', { 'class': 'td', 'colspan': 6 }, [
					data.error ? _('Cannot read the refused keys from the relay: %s').format(data.error)
					: data.learn ? (data.running === false ? _('The relay is not running.') : _('No refused keys yet.'))
					: _('Learn mode is off: turn it on above to list the keys that are refused.')
				])
			])
		]));
		return table;
	},

	handleAllow: function(key) {
		return callAllow(key).then(res => {
			if (res.error)
				ui.addNotification(null, E('p', _('Could not allow %s: %s').format(key, res.error)), 'error');
			else
				ui.addTimeLimitedNotification(null, E('p', _('%s may connect now.').format(key)), 5000, 'info');
			return this.refresh();
		});
	},

	refresh: function() {
		return callRefused().then(data => {
			const box = document.getElementById('tinyderp-refused-box');
			if (box)
				dom.content(box, this.renderRefused(data));
		});
	},

	render: function(data) {
		const m = new form.Map('tinyderp', _('Who may connect'),
			_('With an empty allowlist and no other check, every client may use the relay. With keys on the list, only those nodes may.'));
		const s = m.section(form.NamedSection, 'main', 'tinyderp');
		s.addremove = false;
		let o = s.option(form.DynamicList, 'allowed_key', _('Allowed node keys'),
			_('nodekey:... as tailscale shows it (tailscale debug prefs | grep NodeKey) or as learn mode logs it.'));
		o.datatype = 'string';
		o.validate = function(section, value) {
			return (!value || /^(nodekey:)?[0-9a-f]{64}$/.test(value)) ? true : _('Expecting a node key: nodekey: and 64 hexadecimal digits');
		};
		o = s.option(form.Flag, 'log_refused_keys', _('Learn mode'),
			_('The relay remembers the last 64 node keys it refused, listed below to be allowed, and logs each at most every 10 minutes.'));
		o.rmempty = false;

		poll.add(() => this.refresh(), POLL_INTERVAL);
		return m.render().then(form => E('div', {}, [
			form,
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('Refused node keys') ]),
				E('div', { 'id': 'tinyderp-refused-box' }, [ this.renderRefused(data) ])
			])
		]));
	}
});
