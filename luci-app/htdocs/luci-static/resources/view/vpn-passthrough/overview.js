'use strict';
'require view';
'require form';
'require poll';
'require rpc';
'require uci';
'require dom';

// ubus object luci.vpn-passthrough is /usr/libexec/rpcd/luci.vpn-passthrough,
// which runs `vpn-passthrough rpcd call status`: one JSON object with
// protocols, counters, sessions, capabilities, last_error (or error when the
// daemon is not running). A failed call resolves to {} (expect, no reject).
const callStatus = rpc.declare({
	object: 'luci.vpn-passthrough',
	method: 'status',
	expect: { '': {} }
});

const protoNames = { pptp: 'PPTP', l2tp: 'L2TP', ipsec: 'IPsec', esp: 'ESP', ike: 'IKE' };

function protoName(p) {
	return protoNames[p] || String(p || '-').toUpperCase();
}

function fmtCount(n) {
	return (n == null) ? '-' : String(n);
}

function fmtAge(s) {
	if (s == null || s < 0)
		return '-';
	const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
	return h ? '%dh %02dm'.format(h, m) : (m ? '%dm %02ds'.format(m, sec) : '%ds'.format(sec));
}

function table(id, titles) {
	return E('table', { 'class': 'table', 'id': id }, [
		E('tr', { 'class': 'tr table-titles' },
			titles.map(function(t) { return E('th', { 'class': 'th' }, t); }))
	]);
}

return view.extend({
	load: function() {
		return Promise.all([
			callStatus(),
			uci.load('vpn-passthrough')
		]);
	},

	renderState: function(st) {
		const running = st && !st.error && Array.isArray(st.protocols);
		const state = document.getElementById('vpnpt-state');

		if (state) {
			dom.content(state, running
				? E('span', {}, [
					_('Running'), ' (', _('version %s').format(st.version || '?'), ')',
					st.last_error ? E('div', { 'class': 'alert-message warning' }, [ _('Last error: %s').format(st.last_error) ]) : '',
					Array.isArray(st.warnings) && st.warnings.length ? E('div', { 'class': 'alert-message notice' }, st.warnings.join('; ')) : ''
				])
				: E('em', {}, st && st.error ? _('Not running: %s').format(st.error) : _('Not running')));
		}

		const protocols = running ? st.protocols : [];
		cbi_update_table('#vpnpt-protocols', protocols.map(function(d) {
			return [
				protoName(d.proto),
				d.enabled ? _('passed') : _('blocked'),
				d.datapath || '-',
				d.reason || '',
				d.degraded || ''
			];
		}), E('em', _('No data')));

		const counters = (running && st.counters) ? st.counters : {};
		cbi_update_table('#vpnpt-counters', Object.keys(counters).sort().map(function(name) {
			return [ name, fmtCount(counters[name].packets), fmtCount(counters[name].bytes) ];
		}), E('em', _('No counters')));

		const sessions = (running && Array.isArray(st.sessions)) ? st.sessions : [];
		cbi_update_table('#vpnpt-sessions', sessions.map(function(s) {
			return [
				protoName(s.proto),
				s.client || '-',
				s.server || '-',
				s.orig_id ? (s.trans_id ? '%s → %s'.format(s.orig_id, s.trans_id) : s.orig_id) : '-',
				s.peer_id || '-',
				s.state || '-',
				'%s / %s'.format(fmtCount(s.packets_out), fmtCount(s.packets_in)),
				fmtAge(s.age_s)
			];
		}), E('em', _('No active sessions')));

		const caps = (running && st.capabilities) ? st.capabilities : {};
		cbi_update_table('#vpnpt-caps', Object.keys(caps).filter(function(k) {
			return typeof caps[k] == 'boolean' || typeof caps[k] == 'string';
		}).sort().map(function(k) {
			const v = caps[k];
			return [ k, (typeof v == 'boolean') ? (v ? _('yes') : _('no')) : v,
				(caps.notes && caps.notes[k]) ? caps.notes[k] : '' ];
		}), E('em', _('No data')));
	},

	render: function(data) {
		let m, s, o;

		m = new form.Map('vpn-passthrough', _('VPN Passthrough'),
			_('Lets PPTP, L2TP and IPsec clients on the LAN reach VPN servers through the router\'s NAT. ' +
			  'A protocol that is switched off is blocked from LAN to WAN and counted.'));

		s = m.section(form.NamedSection, 'globals', 'globals', _('Settings'));
		s.addremove = false;

		o = s.option(form.Flag, 'enabled', _('Enable'),
			_('Run the vpn-passthrough daemon. Off removes all of its firewall state.'));
		o.rmempty = false;
		o.default = '1';

		o = s.option(form.ListValue, 'mode', _('Mode'),
			_('Auto uses the kernel\'s conntrack helpers where the kernel has them and the userspace engines elsewhere.'));
		o.value('auto', _('Auto'));
		o.value('kernel', _('Kernel helpers only'));
		o.value('userspace', _('Userspace engines (NFQUEUE)'));
		o.default = 'auto';

		o = s.option(form.DynamicList, 'lan_zone', _('LAN zones'),
			_('Firewall zones (or networks) on the LAN side.'));
		o.datatype = 'uciname';
		o.placeholder = 'lan';

		o = s.option(form.DynamicList, 'wan_zone', _('WAN zones'),
			_('Firewall zones (or networks) on the WAN side.'));
		o.datatype = 'uciname';
		o.placeholder = 'wan';

		o = s.option(form.Flag, 'log_blocked', _('Log blocked packets'),
			_('Log (rate-limited) the VPN packets that a switched-off protocol blocks.'));
		o.rmempty = false;

		[
			[ 'pptp', _('PPTP'), _('TCP 1723 and GRE.') ],
			[ 'l2tp', _('L2TP'), _('UDP 1701.') ],
			[ 'ipsec', _('IPsec'), _('IKE (UDP 500), NAT-T (UDP 4500), ESP and AH.') ]
		].forEach(function(p) {
			s = m.section(form.NamedSection, p[0], p[0], p[1]);
			s.addremove = false;
			o = s.option(form.Flag, 'enabled', _('Pass through'),
				_('On: passed through the NAT. Off: blocked from LAN to WAN.') + ' ' + p[2]);
			o.rmempty = false;
			o.default = '1';
		});

		const status = E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Status')),
			E('div', { 'id': 'vpnpt-state' }, E('em', _('Collecting data…'))),
			E('h4', _('Protocols')),
			table('vpnpt-protocols', [ _('Protocol'), _('State'), _('Datapath'), _('Why'), _('Limits') ]),
			E('h4', _('Sessions')),
			table('vpnpt-sessions', [ _('Protocol'), _('Client'), _('Server'), _('Client ID → NAT ID'),
				_('Server ID'), _('State'), _('Packets out / in'), _('Age') ]),
			E('h4', _('Counters')),
			table('vpnpt-counters', [ _('Counter'), _('Packets'), _('Bytes') ]),
			E('h4', _('Kernel capabilities')),
			table('vpnpt-caps', [ _('Capability'), _('Present'), _('Found by') ])
		]);

		return m.render().then(L.bind(function(nodes) {
			const root = E('div', {}, [ status, nodes ]);
			requestAnimationFrame(L.bind(this.renderState, this, data[0]));
			poll.add(L.bind(function() {
				return callStatus().then(L.bind(this.renderState, this));
			}, this), 5);
			return root;
		}, this));
	}
});
