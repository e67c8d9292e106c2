// hoodiecrow-imap (npm): a second IMAP server, independent of Dovecot, for
// pullmail's end-to-end tests.  It keeps its mailboxes in memory.
//
//   node hoodiecrow.mjs --config FILE --port N --port-file FILE --dump FILE
//
// FILE (JSON):
//   {
//     "plugins": ["SASL-IR", "XOAUTH2", "UIDPLUS", ...],
//     "tls": { "cert": PEM path, "key": PEM path },   (absent: no TLS)
//     "users": { "NAME": { "password": "...", "token": "..." } },
//     "folders": { "INBOX": [MSG...], "NAME": [MSG...] }
//   }
// A MSG is { "file": path, "flags": ["\\Deleted", ...] }: the file's bytes
// (LF line ends) become the message with CRLF line ends.  Folder names are
// IMAP's (modified UTF-7).  A user's "token" is the access token hoodiecrow's
// XOAUTH2 plugin accepts.
//
// Port 0 picks a free port; it is written to --port-file once listening.
// On SIGUSR2 the launcher writes --dump: one line per message held,
// "FOLDER UID SHA256 FLAGS", the hash over the bytes with LF line ends (as
// the seed files hold them) and the flags comma-separated ("-" for none).
import { createRequire } from "node:module";
import { createHash } from "node:crypto";
import fs from "node:fs";

const require = createRequire(import.meta.url);
const hoodiecrow = require("hoodiecrow-imap");

function die(msg) {
	process.stderr.write(`hoodiecrow.mjs: ${msg}\n`);
	process.exit(1);
}

const args = {};
for (let i = 2; i < process.argv.length; i += 2) {
	const k = process.argv[i];
	if (!k.startsWith("--") || i + 1 >= process.argv.length)
		die(`bad argument ${k}`);
	args[k.slice(2)] = process.argv[i + 1];
}
for (const k of ["config", "port", "port-file", "dump"])
	if (args[k] === undefined)
		die(`--${k} is required`);

const conf = JSON.parse(fs.readFileSync(args.config, "utf-8"));

// A message as hoodiecrow holds it: a "binary" string (one char a byte),
// which it writes back with Buffer's "binary" encoding.
function message(m) {
	const raw = fs.readFileSync(m.file).toString("latin1")
		.replace(/\r?\n/g, "\r\n");
	return { raw, flags: m.flags || [] };
}

const storage = { INBOX: { messages: [] }, "": { separator: "/", folders: {} } };
for (const [name, msgs] of Object.entries(conf.folders || {})) {
	const box = { messages: msgs.map(message) };
	if (name === "INBOX")
		storage.INBOX = box;
	else
		storage[""].folders[name] = box;
}

const users = {};
for (const [name, u] of Object.entries(conf.users || {})) {
	users[name] = { password: u.password || "" };
	if (u.token)
		users[name].xoauth2 = { accessToken: u.token,
		    sessionTimeout: 3600 * 1000 };
}

const options = { plugins: conf.plugins || [], users, storage };
if (conf.tls) {
	options.secureConnection = true;
	options.credentials = { cert: fs.readFileSync(conf.tls.cert),
	    key: fs.readFileSync(conf.tls.key) };
}
const server = hoodiecrow(options);

function dump() {
	const lines = [];
	for (const [path, box] of Object.entries(server.folderCache)) {
		for (const m of box.messages || []) {
			const lf = Buffer.from(m.raw.replace(/\r\n/g, "\n"),
			    "latin1");
			const sum = createHash("sha256").update(lf).digest("hex");
			const flags = m.flags.length ? m.flags.join(",") : "-";
			lines.push(`${path} ${m.uid} ${sum} ${flags}\n`);
		}
	}
	fs.writeFileSync(args.dump + ".tmp", lines.join(""));
	fs.renameSync(args.dump + ".tmp", args.dump);
}

process.on("SIGUSR2", dump);
process.on("SIGTERM", () => process.exit(0));
server.server.on("error", (e) => die(e.message));
server.listen(Number(args.port), "127.0.0.1", () => {
	const port = server.server.address().port;
	fs.writeFileSync(args["port-file"] + ".tmp", `${port}\n`);
	fs.renameSync(args["port-file"] + ".tmp", args["port-file"]);
});
