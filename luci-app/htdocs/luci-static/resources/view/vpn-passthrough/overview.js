'use strict';
'require view';
'require form';
'require poll';
'require rpc';
'require uci';
'require dom';
'require ui';
'require tools.widgets as widgets';

// The daemon registers the ubus object vpn-passthrough itself. Its replies
// follow the status model of src/status (doc.go), version SCHEMA; unknown
// values are null and show as "-". A failed call rejects: the error is shown
// with its text, never as an empty table.
const SCHEMA = 1;

const callStatus = rpc.declare({
	object: 'vpn-passthrough',
	method: 'status',
	reject: true
});

const callDrop = rpc.declare({
	object: 'vpn-passthrough',
	method: 'drop_session',
	params: [ 'protocol', 'id' ],
	reject: true
});

const protoNames = { pptp: 'PPTP', l2tp: 'L2TP', ipsec: 'IPsec' };

// What switching a protocol off blocks, LAN to WAN (the planner's traffic table).
const offBlocks = {
	pptp: _('Off blocks PPTP: TCP port 1723 and GRE, from the LAN to the WAN.'),
	l2tp: _('Off blocks L2TP: UDP port 1701, from the LAN to the WAN.'),
	ipsec: _('Off blocks IPsec: ESP, AH, IKE (UDP 500) and NAT-T (UDP 4500), from the LAN to the WAN.')
};

function kindName(s) {
	switch (s.proto) {
	case 'pptp': return (s.datapath == 'userspace') ? _('PPTP call') : _('PPTP control');
	case 'gre': return _('PPTP data (GRE)');
	case 'l2tp': return _('L2TP');
	case 'esp': return _('IPsec ESP');
	case 'ah': return _('IPsec AH');
	case 'ike': return _('IPsec IKE');
	case 'nat-t': return _('IPsec NAT-T');
	}
	return String(s.proto || '-');
}

// A duration in words and units ("3 min 12 s"); null is unknown ("-").
function fmtDuration(s) {
	if (s == null || s < 0)
		return '-';
	s = Math.floor(s);
	if (s < 60)
		return _('%d s').format(s);
	if (s < 3600)
		return _('%d min %d s').format(Math.floor(s / 60), s % 60);
	if (s < 86400)
		return _('%d h %d min').format(Math.floor(s / 3600), Math.floor((s % 3600) / 60));
	return _('%d d %d h').format(Math.floor(s / 86400), Math.floor((s % 86400) / 3600));
}

function fmtTraffic(pkts, bytes) {
	if (pkts == null)
		return '-';
	return _('%d packets (%s)').format(pkts, '%1024.1mB'.format(bytes || 0));
}

// The state of a protocol in plain words.
function stateWords(p) {
	const name = protoNames[p.proto] || p.proto;
	switch (p.datapath) {
	case 'kernel':
		return (p.proto == 'pptp')
			? _('%s: passing, through the kernel helper').format(name)
			: _('%s: passing, through the kernel\'s NAT').format(name);
	case 'userspace':
		return _('%s: passing, through the userspace engine').format(name);
	case 'blocked':
		return _('%s: blocked').format(name);
	case 'untouched':
		return _('%s: not handled (vpn-passthrough is disabled)').format(name);
	}
	return _('%s: unknown').format(name);
}

// Why a call failed, for people: the daemon down, no permission, or its text.
function errorText(e) {
	const msg = (e && e.message) ? e.message : String(e);
	if (/ubus code 4|not found/i.test(msg))
		return _('The vpn-passthrough daemon is not running (its ubus object is missing). Start it with /etc/init.d/vpn-passthrough start.');
	if (/ubus code 6|denied|-32002/i.test(msg))
		return _('Access denied: your login lacks the luci-app-vpn-passthrough permissions.');
	return msg;
}

function table(id, titles) {
	return E('table', { 'class': 'table', 'id': id }, [
		E('tr', { 'class': 'tr table-titles' },
			titles.map(function(t) { return E('th', { 'class': 'th' }, t); }))
	]);
}

function capability(st, name) {
	return (st.capabilities || []).filter(function(c) { return c.name == name; })[0];
}

return view.extend({
	load: function() {
		return Promise.all([
			callStatus().catch(function(e) { return { error: errorText(e) }; }),
			uci.load('vpn-passthrough')
		]);
	},

	handleDrop: function(s, ev) {
		const btn = ev.currentTarget;
		btn.disabled = true;
		return callDrop(s.protocol, s.id).then(L.bind(function() {
			ui.addNotification(null, E('p', _('Session dropped: %s from %s to %s.').format(kindName(s), s.client, s.server)), 'info');
			return callStatus().then(L.bind(this.renderState, this));
		}, this)).catch(function(e) {
			btn.disabled = false;
			const msg = /ubus code 4/.test(e.message) ? _('that session has already ended') : errorText(e);
			ui.addNotification(null, E('p', _('Could not drop the session: %s').format(msg)), 'danger');
		});
	},

	renderBanners: function(st) {
		const out = [];
		if (st.error) {
			out.push(E('div', { 'class': 'alert-message danger' }, [ st.error ]));
			return out;
		}
		if (st.schema !== SCHEMA)
			out.push(E('div', { 'class': 'alert-message danger' }, [
				_('This page reads status version %d, but the daemon sends version %s: update luci-app-vpn-passthrough.').format(SCHEMA, String(st.schema)) ]));
		if (st.state == 'error')
			out.push(E('div', { 'class': 'alert-message danger' }, [
				_('No configuration is in force: %s').format(st.last_error || '-') ]));
		else if (st.last_error)
			out.push(E('div', { 'class': 'alert-message warning' }, [
				_('The last change was refused, the previous settings stay in force: %s').format(st.last_error) ]));

		// fw4's flow offloading (status "offload"): the daemon reads fw4's
		// forward chain and says whether the package's exemption is ahead
		// of `flow offload`.
		const off = st.offload || {};
		const hit = (st.protocols || []).filter(function(p) { return p.flow_offload; })
			.map(function(p) { return protoNames[p.proto] || p.proto; }).join(', ');
		if (off.state == 'not_exempted')
			out.push(E('div', { 'class': 'alert-message danger', 'id': 'vpnpt-offload', 'data-state': off.state }, [
				E('strong', _('Flow offloading is on, and VPN control traffic is NOT exempted from it.')), ' ',
				hit ? _('Offloaded flows skip the userspace engine after their first packets, so %s will break.').format(hit) + ' ' : '',
				off.detail || '' ]));
		else if (off.state == 'unknown')
			out.push(E('div', { 'class': 'alert-message warning', 'id': 'vpnpt-offload', 'data-state': off.state }, [
				E('strong', _('Flow offloading is on; whether VPN control traffic is exempted could not be checked.')), ' ', off.detail || '' ]));
		else if (off.state == 'exempted')
			out.push(E('div', { 'class': 'alert-message notice', 'id': 'vpnpt-offload', 'data-state': off.state }, [
				_('Flow offloading is on; VPN control traffic is exempted (fw4 include present).') ]));

		(st.protocols || []).forEach(function(p) {
			if (p.proto == 'pptp' && p.datapath == 'userspace') {
				const h = capability(st, 'nf_conntrack_pptp'), n = capability(st, 'nf_nat_pptp');
				if ((h && !h.present) || (n && !n.present))
					out.push(E('div', { 'class': 'alert-message notice', 'id': 'vpnpt-capbanner' }, [
						_('PPTP through the userspace engine: install kmod-nf-nathelper-extra for kernel speed.') ]));
			}
		});
		const acct = capability(st, 'nf_conntrack_acct');
		if (acct && !acct.present && (st.sessions || []).some(function(s) { return s.datapath == 'kernel'; }))
			out.push(E('div', { 'class': 'alert-message notice' }, [
				_('Traffic of kernel sessions is not counted: set net.netfilter.nf_conntrack_acct=1 to see it.') ]));
		// A plan warning that repeats a protocol's limitation is shown there only.
		const limits = (st.protocols || []).map(function(p) { return p.limitation || ''; }).join('\n');
		(st.warnings || []).forEach(function(w) {
			const bare = w.replace(/^[a-z0-9]+: /, '');
			if (!limits.includes(bare) && bare != off.detail)
				out.push(E('div', { 'class': 'alert-message notice' }, [ w ]));
		});
		return out;
	},

	renderState: function(st) {
		st = st || {};
		dom.content(document.getElementById('vpnpt-banners'), this.renderBanners(st));

		const protocols = st.error ? [] : (st.protocols || []);
		dom.content(document.getElementById('vpnpt-state'), protocols.length
			? E('ul', {}, protocols.map(function(p) {
				return E('li', { 'data-proto': p.proto }, [
					E('strong', stateWords(p)),
					p.datapath == 'blocked' ? '' : E('span', { 'class': 'cbi-value-description' }, [ ' — ', p.reason ]),
					p.limitation ? E('div', { 'class': 'cbi-value-description' }, [ _('Limitation: %s').format(p.limitation) ]) : ''
				]);
			}))
			: E('em', {}, st.error ? _('No status: see above.') : _('Collecting data…')));

		const sessions = st.error ? [] : (st.sessions || []);
		cbi_update_table('#vpnpt-sessions', sessions.map(L.bind(function(s) {
			const ids = (s.orig_id != null || s.trans_id != null)
				? '%s → %s'.format(s.orig_id != null ? s.orig_id : '-', s.trans_id != null ? s.trans_id : '-') : '-';
			let state = s.state || '-';
			if (s.expires_s != null)
				state += ', ' + _('expires in %s').format(fmtDuration(s.expires_s));
			return [
				kindName(s),
				s.client || '-',
				s.server || '-',
				ids,
				s.peer_id != null ? s.peer_id : '-',
				state,
				E('span', { 'title': _('from the client / to the client') }, [
					fmtTraffic(s.packets_out, s.bytes_out), ' / ', fmtTraffic(s.packets_in, s.bytes_in) ]),
				fmtDuration(s.age_s),
				fmtDuration(s.idle_s),
				E('button', {
					'class': 'cbi-button cbi-button-remove',
					'data-session': s.id,
					'click': ui.createHandlerFn(this, 'handleDrop', s)
				}, [ _('Drop') ])
			];
		}, this)), E('em', _('No VPN sessions right now.')));

		cbi_update_table('#vpnpt-blocked', protocols.map(function(p) {
			const b = p.blocked || {};
			return [
				protoNames[p.proto] || p.proto,
				b.packets ? _('%d packets (%s)').format(b.packets, '%1024.1mB'.format(b.bytes || 0)) : _('none'),
				p.datapath == 'blocked' ? _('switched off') : _('switched on')
			];
		}), E('em', _('No data')));

		const counters = st.counters || {};
		cbi_update_table('#vpnpt-counters', Object.keys(counters).sort().filter(function(k) {
			return counters[k].packets || counters[k].bytes;
		}).map(function(k) {
			return [ k, String(counters[k].packets), counters[k].bytes ? '%1024.1mB'.format(counters[k].bytes) : '-' ];
		}), E('em', _('All counters are zero.')));

		cbi_update_table('#vpnpt-caps', (st.capabilities || []).map(function(c) {
			return [ c.name, c.present ? _('yes') : _('no'), c.needed_for || '', c.how || '', c.present ? '' : (c.package || '') ];
		}), E('em', _('No data')));
	},

	render: function(data) {
		let m, s, o;

		// The three switches lead the page: one section, each option in its own UCI section.
		m = new form.Map('vpn-passthrough');
		s = m.section(form.NamedSection, 'globals', 'globals', _('Pass VPN protocols through the NAT'));
		s.addremove = false;
		[ [ 'pptp', _('PPTP') ], [ 'l2tp', _('L2TP') ], [ 'ipsec', _('IPsec') ] ].forEach(function(p) {
			o = s.option(form.Flag, 'enabled_' + p[0], p[1], offBlocks[p[0]]);
			o.ucisection = p[0];
			o.ucioption = 'enabled';
			o.rmempty = false;
			o.default = '1';
		});

		const adv = new form.Map('vpn-passthrough');
		s = adv.section(form.NamedSection, 'globals', 'globals', _('Advanced settings'));
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('limits', _('Limits of the userspace engines'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enable vpn-passthrough'),
			_('Off removes all of its firewall state: nothing is passed or blocked by it.'));
		o.rmempty = false;
		o.default = '1';

		o = s.taboption('general', form.ListValue, 'mode', _('Datapath'),
			_('Automatic uses the kernel\'s PPTP helper where the kernel has it and the userspace engines elsewhere.'));
		o.value('auto', _('Automatic'));
		o.value('kernel', _('Kernel only'));
		o.value('userspace', _('Userspace engines (NFQUEUE)'));
		o.default = 'auto';

		o = s.taboption('general', widgets.ZoneSelect, 'lan_zone', _('LAN zones'),
			_('The firewall zones whose clients may use VPNs (none chosen: lan).'));
		o.multiple = true;
		o.nocreate = true;

		o = s.taboption('general', widgets.ZoneSelect, 'wan_zone', _('WAN zones'),
			_('The firewall zones the VPN servers are reached through (none chosen: wan).'));
		o.multiple = true;
		o.nocreate = true;

		o = s.taboption('general', form.Flag, 'log_blocked', _('Log blocked attempts'),
			_('Write a (rate-limited) log line for each VPN packet a switched-off protocol blocks.'));
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'esp_mux', _('Several clients to one IPsec server'),
			_('Raw ESP from several LAN clients to the same server needs the userspace ESP engine.'));
		o.ucisection = 'ipsec';
		o.value('auto', _('Automatic'));
		o.value('on', _('Always use the ESP engine'));
		o.value('off', _('Never (one client per server)'));
		o.default = 'auto';

		o = s.taboption('general', form.Flag, 'keep_ike_port', _('Keep IKE on UDP port 500'),
			_('For servers that answer only to source port 500: the engine shares port 500 among clients.'));
		o.ucisection = 'ipsec';

		o = s.taboption('general', form.Value, 'queue_base', _('NFQUEUE numbers'),
			_('The PPTP engine uses this queue, the ESP engine the next one.'));
		o.datatype = 'range(0,65534)';
		o.placeholder = '4200';

		function limit(section, opt, title, max, placeholder, help) {
			o = s.taboption('limits', form.Value, section + '_' + opt, title, help);
			o.ucisection = section;
			o.ucioption = opt;
			o.datatype = 'range(1,%d)'.format(max);
			o.placeholder = placeholder;
		}
		limit('pptp', 'max_calls', _('PPTP calls at most'), 65535, '1024', _('All clients together.'));
		limit('pptp', 'max_calls_per_client', _('PPTP calls per client'), 65535, '16', _('One LAN address.'));
		limit('ipsec', 'max_sas', _('ESP security associations at most'), 1048576, '4096', _('All clients together.'));

		[ [ 'pptp', _('PPTP idle timeout') ], [ 'ipsec', _('IPsec idle timeout') ] ].forEach(function(p) {
			o = s.taboption('limits', form.Value, p[0] + '_idle_timeout', p[1],
				_('A session without traffic this long ends: seconds, or a duration like 90s, 10m or 1h (at most 24h).'));
			o.ucisection = p[0];
			o.ucioption = 'idle_timeout';
			o.placeholder = '10m';
			o.validate = function(section_id, value) {
				if (value == null || value === '')
					return true;
				let secs = 0;
				if (/^[0-9]+$/.test(value))
					secs = +value;
				else if (/^([0-9]+(\.[0-9]+)?(h|m|s|ms))+$/.test(value))
					value.replace(/([0-9.]+)(h|ms|m|s)/g, function(_m, n, u) { secs += (+n) * { h: 3600, m: 60, s: 1, ms: 0.001 }[u]; });
				else
					return _('Expecting seconds, or a duration like 90s, 10m or 1h');
				return (secs >= 1 && secs <= 86400) ? true : _('Expecting a duration from 1s to 24h');
			};
		});

		return Promise.all([ m.render(), adv.render() ]).then(L.bind(function(nodes) {
			const page = E('div', {}, [
				E('h2', { 'name': 'content' }, _('VPN Passthrough')),
				E('div', { 'class': 'cbi-map-descr' }, _('Lets PPTP, L2TP and IPsec clients on the LAN reach VPN servers through the router\'s NAT. A protocol that is switched off is blocked from the LAN to the WAN and counted.')),
				E('div', { 'id': 'vpnpt-banners' }),
				E('div', { 'class': 'cbi-section' }, [
					E('h3', _('State')),
					E('div', { 'id': 'vpnpt-state' }, E('em', _('Collecting data…')))
				]),
				nodes[0],
				E('div', { 'class': 'cbi-section' }, [
					E('h3', _('Live sessions')),
					table('vpnpt-sessions', [ _('Tunnel'), _('Client'), _('Server'), _('Client\'s ID → sent as'),
						_('Server\'s ID'), _('State'), _('Traffic out / in'), _('Age'), _('Idle'), '' ])
				]),
				E('div', { 'class': 'cbi-section' }, [
					E('h3', _('Blocked attempts')),
					table('vpnpt-blocked', [ _('Protocol'), _('Blocked from the LAN'), _('Switch') ])
				]),
				nodes[1],
				E('details', { 'class': 'cbi-section', 'id': 'vpnpt-diagnostics' }, [
					E('summary', {}, _('Diagnostics: counters and kernel capabilities')),
					E('h4', _('Counters (non-zero)')),
					table('vpnpt-counters', [ _('Counter'), _('Packets'), _('Bytes') ]),
					E('h4', _('Kernel capabilities')),
					table('vpnpt-caps', [ _('Capability'), _('Present'), _('Needed for'), _('How it was found'), _('Package') ])
				])
			]);
			requestAnimationFrame(L.bind(this.renderState, this, data[0]));
			poll.add(L.bind(function() {
				return callStatus().catch(function(e) { return { error: errorText(e) }; }).then(L.bind(this.renderState, this));
			}, this), 5);
			return page;
		}, this));
	}
});
