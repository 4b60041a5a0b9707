#!/bin/bash
# The cloudlet CLI's contract: global options anywhere, --help/--version,
# usage errors, one-line errors, and `doctor --json` as one JSON document
# with the fields operators rely on. Runs against the real libvirtd.
#   test_cli.sh CLOUDLET_BINARY BUILD_GUEST_SCRIPT
set -u
cloudlet=$1
guest_dir=$("$2") || { echo "FAIL: cannot build the test guest"; exit 1; }
kernel=$guest_dir/vmlinuz
pass=0 failed=0
ok() { echo "ok - $1"; pass=$((pass+1)); }
bad() { echo "not ok - $1"; failed=$((failed+1)); }
expect() { # expect DESCRIPTION STATUS COMMAND...
	local desc=$1 want=$2; shift 2
	"$@" >"$tmp/out" 2>"$tmp/err"; local got=$?
	if [ "$got" = "$want" ]; then ok "$desc"; else bad "$desc (exit $got, wanted $want; stderr: $(cat "$tmp/err"))"; fi
}
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT

expect "--version" 0 "$cloudlet" --version
grep -qx "cloudlet 0.1.0" "$tmp/out" && ok "--version text" || bad "--version text: $(cat "$tmp/out")"
expect "--help" 0 "$cloudlet" --help
grep -q "doctor" "$tmp/out" && ok "--help lists doctor" || bad "--help lists doctor"
expect "doctor --help" 0 "$cloudlet" doctor --help
grep -q -- "--probe-kernel" "$tmp/out" && ok "doctor --help text" || bad "doctor --help text"
expect "no command is a usage error" 2 "$cloudlet"
expect "unknown command" 2 "$cloudlet" frobnicate
[ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "^cloudlet: error: unknown command 'frobnicate'" "$tmp/err" \
	&& ok "one-line error" || bad "one-line error: $(cat "$tmp/err")"
expect "unknown option" 2 "$cloudlet" doctor --bogus
expect "missing option value" 2 "$cloudlet" doctor --probe-kernel
expect "bad libvirt URI fails cleanly" 1 "$cloudlet" --connect nosuch:///x doctor --no-boot-probe
grep -q "^cloudlet: error: .*nosuch:///x" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] \
	&& ok "libvirt error names the URI" || bad "libvirt error: $(cat "$tmp/err")"

# snapshot info on bad input: one-line error naming the offset.
head -c 1000 /dev/urandom > "$tmp/garbage"
expect "snapshot info of garbage" 1 "$cloudlet" snapshot info "$tmp/garbage"
grep -q "^cloudlet: error: .*offset 0: " "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] \
	&& ok "garbage error names the offset" || bad "garbage error: $(cat "$tmp/err")"
expect "snapshot info of a missing file" 1 "$cloudlet" snapshot info "$tmp/none"
expect "snapshot info needs a file" 2 "$cloudlet" snapshot info
expect "snapshot info --help" 0 "$cloudlet" snapshot info --help

# Global options after the command words.
expect "options after words" 0 "$cloudlet" doctor --no-boot-probe --json --store /srv/elsewhere
/usr/bin/python3 - "$tmp/out" <<'PY' && ok "store option honoured" || bad "store option honoured"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["store"]["path"] == "/srv/elsewhere", d["store"]
assert d["virt_types"]["qemu"]["usable"] is None  # not proven without a probe
PY

# The full doctor with a real boot probe.
expect "doctor --json" 0 "$cloudlet" --json doctor --probe-kernel "$kernel"
cat "$tmp/out"
/usr/bin/python3 - "$tmp/out" <<'PY' && ok "doctor JSON content" || bad "doctor JSON content"
import json, sys
text = open(sys.argv[1]).read()
d = json.loads(text)  # exactly one document: json.loads rejects trailing data
for k in ("libvirt_version", "qemu_version", "cpu_model", "virt_types", "acpi_hotplug", "store", "kvm_device"):
    assert k in d, k
kvm, tcg = d["virt_types"]["kvm"], d["virt_types"]["qemu"]
assert tcg["usable"] is True, tcg
assert tcg["cpu_model"]["model"] == "core2duo" and tcg["cpu_model"]["usable"] is True, tcg
assert isinstance(kvm["usable"], bool), kvm
if not kvm["usable"]:
    assert len(kvm["reason"]) > 20, kvm
assert isinstance(kvm["cpu_model"]["usable"], bool), kvm
assert d["preferred_virt_type"] == ("kvm" if kvm["usable"] else "qemu")
assert d["acpi_hotplug"]["available"] is True
PY

# handoff receive with a token file every handoff would refuse: refused at
# start (it printed "listening", then spun at 100 % CPU on one error per
# failed receive and ignored SIGINT: issue 18); SIGINT exits 130; a token
# file broken by a rotation while it listens ends it too.
mkdir -p "$tmp/hs"
head -c 10 /dev/urandom | base64 >"$tmp/short"; chmod 600 "$tmp/short"
head -c 48 /dev/urandom | base64 >"$tmp/token"; chmod 644 "$tmp/token"
for t in short token missing; do
	expect "handoff receive refuses token file '$t' at start" 1 timeout 10 \
		"$cloudlet" --store "$tmp/hs" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/$t"
	! grep -q listening "$tmp/out" && [ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "token file" "$tmp/err" \
		&& ok "token file '$t': one line naming it, before listening" || bad "token file '$t': $(cat "$tmp/out" "$tmp/err")"
done
chmod 600 "$tmp/token"
"$cloudlet" --store "$tmp/hs" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/token" >"$tmp/out" 2>"$tmp/err" &
rpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/out" && break; sleep 0.1; done
kill -INT $rpid; wait $rpid; rc=$?
[ $rc = 130 ] && ok "handoff receive: SIGINT exits 130" || bad "handoff receive: SIGINT gave $rc ($(cat "$tmp/err"))"
"$cloudlet" --store "$tmp/hs" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/token" >"$tmp/out" 2>"$tmp/err" &
rpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/out" && break; sleep 0.1; done
port=$(sed -n 's/.*on port \([0-9]*\).*/\1/p' "$tmp/out")
chmod 644 "$tmp/token"  # a rotation gone wrong
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null  # one connection that goes away
for _ in $(seq 50); do kill -0 $rpid 2>/dev/null || break; sleep 0.1; done
if kill -0 $rpid 2>/dev/null; then
	bad "handoff receive keeps running on a broken token file"; kill -KILL $rpid
else
	wait $rpid; rc=$?
	[ $rc = 1 ] && grep -q "readable by others" "$tmp/err" && [ "$(wc -l <"$tmp/err")" -le 2 ] \
		&& ok "handoff receive stops on a token file a rotation broke" || bad "rotation: exit $rc, $(cat "$tmp/err")"
fi

echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
