// A small netifd stand-in for the test bed (netifd itself is not built): it serves
// `network.interface dump`, `network.interface.<name> status`, `network.device status` and,
// optionally, `system board` on the real ubusd, from a JSON file in the format of
// `ubus call network.interface dump` (firewall4's tests/mocks/ubus/network.interface~dump.json).
// Usage: ucode netifd.uc DUMP.json [board]
'use strict';
import * as ubus from 'ubus';
import * as uloop from 'uloop';
import { readfile } from 'fs';

let dump = json(readfile(ARGV[0]));
uloop.init();
let conn = ubus.connect();
if (!conn) {
	warn(`netifd stand-in: cannot connect to ubus: ${ubus.error()}\n`);
	exit(1);
}

let objs = [];
push(objs, conn.publish('network.interface', {
	dump: { call: (req) => req.reply(dump), args: {} },
}));
for (let i in dump.interface) {
	let iface = i;
	push(objs, conn.publish(`network.interface.${iface.interface}`, {
		status: { call: (req) => req.reply(iface), args: {} },
	}));
}
let devs = {};
for (let i in dump.interface)
	if (i.l3_device)
		devs[i.l3_device] = { present: true, up: i.up, type: 'Network device' };
push(objs, conn.publish('network.device', {
	status: { call: (req) => req.reply(req.args?.name ? devs[req.args.name] : devs), args: { name: '' } },
}));
if (ARGV[1] == 'board')
	push(objs, conn.publish('system', {
		board: { call: (req) => req.reply({
			kernel: '6.1.0', hostname: 'vpt-bed', system: 'test bed', model: 'vpn-passthrough test bed',
			board_name: 'vpt,bed', release: { distribution: 'OpenWrt', version: 'bed', revision: 'bed',
				target: 'x86/64', description: 'OpenWrt userland test bed' } }), args: {} },
		info: { call: (req) => req.reply({ localtime: time(), uptime: 1, load: [0, 0, 0],
			memory: { total: 1, free: 1, shared: 0, buffered: 0 }, swap: { total: 0, free: 0 } }), args: {} },
	}));

uloop.run();
