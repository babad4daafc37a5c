'use strict';
'require view';
'require rpc';
'require poll';
'require ui';
'require dom';

// Live data from our rpcd plugin (root/usr/share/rpcd/ucode/luci.tinyderp).
const callStatus = rpc.declare({ object: 'luci.tinyderp', method: 'status', expect: { '': {} } });
const callControl = rpc.declare({ object: 'luci.tinyderp', method: 'control', params: [ 'action' ], expect: { '': {} } });

// Seconds between refreshes.
const POLL_INTERVAL = 5;

function fmtUptime(s) {
	if (s == null)
		return '-';
	const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60);
	return '%dd %dh %dm %ds'.format(d, h, m, s % 60);
}

function sum(obj) {
	return Object.values(obj || {}).reduce((a, b) => a + b, 0);
}

function copyText(text) {
	const done = () => ui.addTimeLimitedNotification(null, E('p', _('Copied to the clipboard.')), 3000, 'info');
	if (navigator.clipboard && window.isSecureContext)
		return navigator.clipboard.writeText(text).then(done, () => fallbackCopy(text, done));
	fallbackCopy(text, done);
}

function fallbackCopy(text, done) {
	const area = E('textarea', { style: 'position:fixed;left:-1000px' }, [ text ]);
	document.body.appendChild(area);
	area.select();
	document.execCommand('copy');
	document.body.removeChild(area);
	done();
}

function reasons(obj) {
	const keys = Object.keys(obj || {}).filter(k => obj[k] > 0);
	if (!keys.length)
		return _('none');
	return keys.map(k => '%s: %d'.format(k, obj[k])).join(', ');
}

// The relay's own periodic `tinyderp check` (its metrics), when it has run.
function checkText(m, steps) {
	if (m.check_exit_code == null)
		return _('not run yet');
	const verdict = [ _('OK'), _('warnings'), _('failures') ][m.check_exit_code] || '?';
	const names = [ _('skipped'), _('ok'), _('warn'), _('fail') ];
	const detail = Object.keys(steps || {}).map(k => '%s %s'.format(k, names[steps[k] + 1] || '?')).join(', ');
	const when = m.check_timestamp_seconds ? new Date(m.check_timestamp_seconds * 1000).toLocaleString() : '';
	return '%s (%s)%s'.format(verdict, when, detail ? ': ' + detail : '');
}

// The mesh as the relay reports it (`tinyderp status --json`): relays logged in here with
// the mesh key, and the peers this relay dials itself (builds with a TLS client only).
function meshItems(mesh) {
	const items = [];
	for (const c of (mesh || {}).clients || [])
		items.push(E('div', { 'class': 'tinyderp-mesh-client', 'data-key': c.key }, [
			_('%s from %s, logged in for %s%s').format(c.key.replace(/^nodekey:/, '').substr(0, 16) + '…', c.address || '?',
				fmtUptime(c.connected_seconds), c.watching ? '' : ' ' + _('(not watching)'))
		]));
	const more = ((mesh || {}).clients_total || 0) - (((mesh || {}).clients || []).length);
	if (more > 0)
		items.push(E('div', {}, [ _('and %d more').format(more) ]));
	for (const p of (mesh || {}).peers || [])
		items.push(E('div', { 'class': 'tinyderp-mesh-peer', 'data-peer': p.peer }, [
			p.connected
				? _('%s: connected for %s, %d clients learned').format(p.peer, fmtUptime(p.since_seconds), p.clients_learned)
				: _('%s: not connected (%s)').format(p.peer, p.last_error || _('not dialled yet'))
		]));
	return items.length ? items : [ _('none') ];
}

return view.extend({
	load: function() {
		return callStatus();
	},

	rows: function(st) {
		const m = st.metrics || {}, b = st.breakdown || {};
		const state = st.running
			? _('Running (PID %d)').format(st.pid)
			: (st.installed ? _('Stopped') : _('Not installed'));
		return [
			[ 'state', _('Service'), state ],
			[ 'version', _('Version'), st.version || '-' ],
			[ 'uptime', _('Uptime'), st.running ? fmtUptime(m.uptime_seconds) : '-' ],
			[ 'clients', _('Clients connected'), st.running ? String(m.clients ?? 0) : '-' ],
			[ 'connections', _('Connections'), st.running ? String(m.connections ?? 0) : '-' ],
			[ 'traffic', _('Traffic relayed'), st.running ? '%1024mB (%d %s)'.format(sum(b.bytes_received_total), sum(b.packets_received_total), _('packets')) : '-' ],
			[ 'drops', _('Drops by reason'), st.running ? reasons(b.packets_dropped_total) : '-' ],
			[ 'refusals', _('Refusals by reason'), st.running ? reasons(b.clients_refused_total) : '-' ],
			[ 'check', _('Last reachability check'), st.running ? checkText(m, b.check_status) : '-' ],
			[ 'mesh', _('Mesh peers'), st.running ? meshItems(st.mesh) : '-' ],
			[ 'pin', _('Certificate pin'), st.pin || (st.derpmap_error ? st.derpmap_error : '-') ]
		];
	},

	renderTable: function(st) {
		return E('table', { 'class': 'table', 'id': 'tinyderp-status' }, this.rows(st).map(r =>
			E('tr', { 'class': 'tr', 'data-field': r[0] }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ r[1] ]),
				E('td', { 'class': 'td left', 'id': 'tinyderp-' + r[0] }, Array.isArray(r[2]) ? r[2] : [ r[2] ])
			])));
	},

	renderSnippets: function(st) {
		const snippets = st.snippets || [];
		if (!snippets.length)
			return E('p', { 'id': 'tinyderp-snippets' }, [ st.running ? _('No DERP map available.') : _('Start the relay to see its DERP map.') ]);
		return E('div', { 'id': 'tinyderp-snippets' }, snippets.map((s, i) => E('div', { 'class': 'cbi-section' }, [
			E('h4', {}, [ s.title ]),
			E('p', { 'style': 'white-space:pre-line' }, [ s.note || '' ]),
			E('pre', { 'id': 'tinyderp-snippet-' + i, 'style': 'white-space:pre-wrap;max-height:20em;overflow:auto' }, [ s.text ]),
			E('button', {
				'class': 'cbi-button cbi-button-action',
				'click': ui.createHandlerFn(this, () => copyText(s.text))
			}, [ _('Copy') ])
		])));
	},

	handleControl: function(action) {
		return callControl(action).then(res => {
			if (res.error || res.code)
				ui.addNotification(null, E('p', _('Could not %s the relay: %s').format(action, res.error || res.output)), 'error');
			return callStatus().then(st => this.update(st));
		});
	},

	update: function(st) {
		dom.content(document.getElementById('tinyderp-status-box'), this.renderTable(st));
		// Re-render the snippets only when they changed (keeps a selection or scroll).
		const key = JSON.stringify([ st.summary, st.snippets, st.running ]);
		const snippets = document.getElementById('tinyderp-snippets');
		if (snippets && key != this.snippetsKey) {
			this.snippetsKey = key;
			dom.content(document.getElementById('tinyderp-summary'), st.summary || '');
			snippets.replaceWith(this.renderSnippets(st));
		}
	},

	render: function(st) {
		this.snippetsKey = JSON.stringify([ st.summary, st.snippets, st.running ]);
		poll.add(() => callStatus().then(s => this.update(s)), POLL_INTERVAL);
		const button = (action, label, style) => E('button', {
			'class': 'cbi-button ' + style,
			'id': 'tinyderp-' + action,
			'click': ui.createHandlerFn(this, 'handleControl', action)
		}, [ label ]);
		return E('div', { 'class': 'cbi-map' }, [
			E('h2', {}, [ _('DERP relay') ]),
			E('div', { 'class': 'cbi-map-descr' }, [
				_('tinyderp relays Tailscale traffic for your tailnet when direct connections fail. Paste one of the DERP map snippets below into your tailnet policy or headscale configuration.')
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('div', { 'id': 'tinyderp-status-box' }, [ this.renderTable(st) ]),
				E('div', { 'class': 'right' }, [
					button('start', _('Start'), 'cbi-button-apply'), ' ',
					button('restart', _('Restart'), 'cbi-button-reload'), ' ',
					button('stop', _('Stop'), 'cbi-button-reset')
				])
			]),
			E('div', { 'class': 'cbi-section' }, [
				E('h3', {}, [ _('DERP map') ]),
				E('p', { 'id': 'tinyderp-summary' }, [ st.summary || '' ]),
				this.renderSnippets(st)
			])
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
