'use strict';
'require baseclass';
'require rpc';

// Status → Overview: each protocol's state in plain words and its live
// sessions, from the daemon's own ubus object (src/status, schema 1).
const callStatus = rpc.declare({
	object: 'vpn-passthrough',
	method: 'status',
	reject: true
});

const names = { pptp: 'PPTP', l2tp: 'L2TP', ipsec: 'IPsec' };

function words(p) {
	switch (p.datapath) {
	case 'kernel': return (p.proto == 'pptp') ? _('passing, through the kernel helper') : _('passing, through the kernel\'s NAT');
	case 'userspace': return _('passing, through the userspace engine');
	case 'blocked': return _('blocked');
	case 'untouched': return _('not handled (vpn-passthrough is disabled)');
	}
	return _('unknown');
}

return baseclass.extend({
	title: _('VPN Passthrough'),

	load: function() {
		// A missing ubus object reaches rpc.js as JSON-RPC -32000 "Object not
		// found" (uhttpd), a missing method as ubus code 4: both mean the daemon
		// is not there.
		return callStatus().catch(function(e) {
			return { error: /ubus code 4|not found/i.test(e.message) ? _('The vpn-passthrough daemon is not running.') : e.message };
		});
	},

	render: function(st) {
		if (!st || st.error || !Array.isArray(st.protocols))
			return E('div', { 'class': 'alert-message warning' }, [ (st && st.error) || _('No status') ]);
		const t = E('table', { 'class': 'table' });
		st.protocols.forEach(function(p) {
			const n = (st.sessions || []).filter(function(s) { return s.protocol == p.proto; }).length;
			t.appendChild(E('tr', { 'class': 'tr' }, [
				E('td', { 'class': 'td left', 'width': '33%' }, [ names[p.proto] || p.proto ]),
				E('td', { 'class': 'td left' }, [ words(p), n ? ' — ' + N_(n, '%d session', '%d sessions').format(n) : '' ])
			]));
		});
		return t;
	}
});
