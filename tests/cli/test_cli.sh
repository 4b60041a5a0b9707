#!/bin/bash
# The cloudlet CLI's contract: global options anywhere, --help/--version,
# usage errors, one-line errors, and `doctor --json` as one JSON document
# with the fields operators rely on. Runs against the real libvirtd.
#   test_cli.sh CLOUDLET_BINARY BUILD_GUEST_SCRIPT
set -u
cloudlet=$(readlink -f "$1")  # absolute: some checks run in another folder
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

# --once counts only an authenticated handoff: a port scan, garbage and a
# silent peer are dropped (one warning line each) and the receiver waits on.
chmod 600 "$tmp/token"
"$cloudlet" --store "$tmp/hs" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/token" --once \
	--handshake-timeout 1 >"$tmp/out" 2>"$tmp/err" &
rpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/out" && break; sleep 0.1; done
port=$(sed -n 's/.*on port \([0-9]*\).*/\1/p' "$tmp/out")
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null                           # connect, close
(exec 3<>"/dev/tcp/127.0.0.1/$port"; head -c 600 /dev/urandom >&3) 2>/dev/null  # garbage
(exec 3<>"/dev/tcp/127.0.0.1/$port"; sleep 2) 2>/dev/null                   # silent past the deadline
sleep 0.5
if kill -0 $rpid 2>/dev/null; then
	ok "handoff receive --once survives a scan, garbage and a silent peer"
	# (Each is logged when its handshake fails or times out: under the
	# sanitizers that may come a moment after the last peer left.)
	for _ in $(seq 50); do
		n=$(grep -c "^cloudlet: warning: handoff connection from 127.0.0.1:" "$tmp/err")
		[ "$n" -ge 3 ] && break
		sleep 0.1
	done
	[ "$n" = 3 ] && ok "each refused connection is one warning line" || bad "refused connections logged: $(cat "$tmp/err")"
	kill -INT $rpid; wait $rpid; rc=$?
	[ $rc = 130 ] && ok "then SIGINT exits 130" || bad "SIGINT after strangers gave $rc"
else
	wait $rpid; bad "handoff receive --once ended on a stranger (exit $?): $(cat "$tmp/err")"
fi

# Ctrl-C during a synthesis from a URL that stalls: cancelled within a second
# (HttpSource is woken), exit 130, nothing left in the store.
http_server=$(dirname "$(readlink -f "$0")")/../unit/http_test_server.py
head -c 65536 /dev/urandom >"$tmp/body"
coproc SRV { exec /usr/bin/python3 "$http_server" "$tmp/body"; }
read -r _ hport <&"${SRV[0]}"
"$cloudlet" --store "$tmp/ss" synthesize "http://127.0.0.1:$hport/stall" --name cltest-stall >"$tmp/out" 2>"$tmp/err" &
spid=$!
sleep 1.5
t0=$(date +%s%N)
kill -INT $spid; wait $spid; rc=$?
t1=$(date +%s%N)
kill "$SRV_PID" 2>/dev/null
took=$(( (t1 - t0) / 1000000 ))
[ $rc = 130 ] && ok "synthesize http:// stalled: SIGINT exits 130" || bad "synthesize http:// SIGINT gave $rc: $(cat "$tmp/err")"
[ "$took" -lt 1000 ] && ok "synthesize http:// stops ${took} ms after SIGINT" || bad "synthesize took ${took} ms to stop"
[ -z "$(ls -A "$tmp/ss/instances" 2>/dev/null)" ] && [ -z "$(ls -A "$tmp/ss/tmp" 2>/dev/null)" ] \
	&& ok "nothing left of the cancelled synthesis" || bad "left: $(ls -R "$tmp/ss")"

# ---- The CLI contract of issue 18 ----------------------------------------

# json_error DESC STATUS EXIT: stdout is exactly one {"error": ...} document
# with that status and exit_status (and the code that goes with the status),
# and stderr is one "cloudlet: error:" line with the same message.
json_error() {
	/usr/bin/python3 - "$tmp/out" "$tmp/err" "$2" "$3" <<'PY' && ok "$1: one JSON error document" || bad "$1: JSON error: $(cat "$tmp/out" "$tmp/err")"
import json, sys
out, err, status, exit_status = open(sys.argv[1]).read(), open(sys.argv[2]).read(), sys.argv[3], int(sys.argv[4])
d = json.loads(out)  # exactly one document: trailing data is refused
codes = {"invalid_arg": -1, "nomem": -2, "io": -4, "libvirt": -5, "not_found": -6, "corrupt": -8,
         "permission": -13, "cancelled": -11}
e = d["error"]
assert set(d) == {"error"}, d
assert e["status"] == status, e
assert e["code"] == codes[status], e
assert e["exit_status"] == exit_status, e
assert e["message"], e
lines = err.splitlines()
assert lines[-1] == "cloudlet: error: " + e["message"].replace("\n", " "), (lines, e)
assert sum(l.startswith("cloudlet: error:") for l in lines) == 1, lines
PY
}

# --json: one JSON document also on error, usage errors (exit 2) included,
# wherever --json stands (it printed nothing on stdout).
expect "--json unknown command" 2 "$cloudlet" --json frobnicate
json_error "unknown command" invalid_arg 2
expect "--json after the mistake" 2 "$cloudlet" frobnicate --json
json_error "--json after the mistake" invalid_arg 2
expect "--json without a command" 2 "$cloudlet" --json
json_error "no command" invalid_arg 2
expect "--json unknown option" 2 "$cloudlet" doctor --bogus --json
json_error "unknown option" invalid_arg 2
expect "--json missing value" 2 "$cloudlet" --json doctor --probe-kernel
json_error "missing value" invalid_arg 2
expect "--json snapshot info of garbage" 1 "$cloudlet" --json snapshot info "$tmp/garbage"
json_error "corrupt input" corrupt 1
expect "--json bad libvirt URI" 1 "$cloudlet" --json --connect nosuch:///x doctor --no-boot-probe
json_error "bad libvirt URI" libvirt 1
head -c 10 /dev/urandom | base64 >"$tmp/short2"; chmod 600 "$tmp/short2"
expect "--json handoff receive, short token" 1 timeout 10 "$cloudlet" --json --store "$tmp/hs" handoff receive \
	--listen 127.0.0.1:0 --token-file "$tmp/short2"
json_error "short token file" invalid_arg 1

# An interrupted receiver's --json: JSON Lines, the bound port first, the
# error document last (exit 130).
head -c 48 /dev/urandom | base64 >"$tmp/tok"; chmod 600 "$tmp/tok"
"$cloudlet" --json --store "$tmp/hs" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/tok" >"$tmp/lines" 2>"$tmp/err" &
rpid=$!
for _ in $(seq 50); do grep -q listening "$tmp/lines" && break; sleep 0.1; done
kill -INT $rpid; wait $rpid; rc=$?
[ $rc = 130 ] && ok "--json handoff receive: SIGINT exits 130" || bad "--json receive: SIGINT gave $rc ($(cat "$tmp/err"))"
/usr/bin/python3 - "$tmp/lines" <<'PY' && ok "--json handoff receive: the port as the first line" || bad "--json receive lines: $(cat "$tmp/lines")"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
first = json.loads(lines[0])
assert set(first) == {"listening"} and first["listening"]["port"] > 0, first
assert len(lines) == 2, lines
PY
tail -n 1 "$tmp/lines" >"$tmp/out"
json_error "interrupted receiver" cancelled 130

# --version and --help with --json print JSON.
expect "--version --json" 0 "$cloudlet" --version --json
/usr/bin/python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["version"]=="0.1.0" and d["minor"]==1, d' \
	"$tmp/out" && ok "--version --json is one document" || bad "--version --json: $(cat "$tmp/out")"
for words in "" "base" "snapshot info"; do
	expect "--help --json ($words)" 0 "$cloudlet" --json $words --help
	/usr/bin/python3 - "$tmp/out" "$words" <<'PY' && ok "--help --json ($words) is one document" || bad "--help --json ($words): $(cat "$tmp/out")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["command"] == (sys.argv[2] or None), d
assert d["help"].startswith("usage: cloudlet " + sys.argv[2]), d
PY
done

# Every noun's --help (snapshot was "unknown command 'snapshot'").
for noun in doctor snapshot base overlay synthesize handoff instance "snapshot info" "snapshot capture"; do
	expect "$noun --help" 0 "$cloudlet" $noun --help
	grep -q "^usage: cloudlet $noun" "$tmp/out" && ok "$noun --help text" || bad "$noun --help text: $(cat "$tmp/out")"
done
expect "snapshot without a verb" 2 "$cloudlet" snapshot
grep -q "snapshot needs 'info' or 'capture'" "$tmp/err" && ok "snapshot without a verb says which" \
	|| bad "snapshot without a verb: $(cat "$tmp/err")"

# Unknown options are options (not commands, not positional arguments).
for case in "--bogus|--bogus doctor" "--bogus|doctor --bogus" "--bogus|doctor --bogus=1" "-x|-x doctor" \
	"--bogus|snapshot info --bogus $tmp/garbage" "--json-x|--json-x doctor"; do
	opt=${case%%|*} line=${case#*|}
	expect "unknown option in '$line'" 2 "$cloudlet" $line
	[ "$(wc -l <"$tmp/err")" = 1 ] && grep -q -- "^cloudlet: error: unknown option $opt\( \|$\)" "$tmp/err" \
		&& ok "'$line': reported as unknown option $opt" || bad "'$line': $(cat "$tmp/err")"
done
expect "a flag given twice" 2 "$cloudlet" doctor --no-boot-probe --no-boot-probe
grep -q -- "--no-boot-probe is given more than once" "$tmp/err" && ok "a flag given twice is named" || bad "flag twice: $(cat "$tmp/err")"
expect "a flag given a value" 2 "$cloudlet" doctor --no-boot-probe=yes
grep -q -- "--no-boot-probe takes no value" "$tmp/err" && ok "a flag given a value is named" || bad "flag value: $(cat "$tmp/err")"

# "--" ends the options: a file named --help is read, not taken for --help;
# --json after "--" is a positional too.
cp "$tmp/garbage" "$tmp/--help"
expect "snapshot info -- --help (a file)" 1 env -C "$tmp" "$cloudlet" snapshot info -- --help
grep -q "^cloudlet: error: .*offset 0: " "$tmp/err" && ! grep -q usage "$tmp/out" \
	&& ok "'--' ends the options" || bad "'--': $(cat "$tmp/out" "$tmp/err")"
expect "-- before the command" 1 env -C "$tmp" "$cloudlet" -- snapshot info --help
grep -q "^cloudlet: error: .*offset 0: " "$tmp/err" && ok "'--' before the command words" || bad "'--' first: $(cat "$tmp/err")"
expect "--json after --" 2 "$cloudlet" doctor -- --json
[ ! -s "$tmp/out" ] && grep -q "doctor takes no arguments" "$tmp/err" && ok "--json after -- is an argument" \
	|| bad "--json after --: $(cat "$tmp/out" "$tmp/err")"

# Numbers are parsed strictly, by one parser naming the option: these were
# taken (atoi, strtoull of "-1", strtod of "1e1", overflow to ULLONG_MAX).
numbers() { # numbers OPTION VALUE ARGS...: refused, exit 2, the message names OPTION and quotes VALUE
	local opt=$1 val=$2; shift 2
	expect "$opt $val refused" 2 "$cloudlet" --store "$tmp/hs" "$@" "$opt" "$val"
	[ "$(wc -l <"$tmp/err")" = 1 ] && grep -qF -- "cloudlet: error: $opt takes " "$tmp/err" && grep -qF -- "not '$val'" "$tmp/err" \
		&& ok "$opt $val: message names the option" || bad "$opt $val: $(cat "$tmp/err")"
}
numbers --max-download -1 synthesize "$tmp/none.ovl"
numbers --max-download 99999999999999999999 synthesize "$tmp/none.ovl"
numbers --max-download 0x10 synthesize "$tmp/none.ovl"
numbers --stall-timeout " 5" synthesize "$tmp/none.ovl"
numbers --threads +4 synthesize "$tmp/none.ovl"
numbers --timeout 5abc handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok"
numbers --timeout 99999999999999999999 handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok"
numbers --level 99x handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok" --codec zstd
numbers --level -1 handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok" --codec zstd
numbers --level 12 handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok" --codec lzma
numbers --timeout 0 handoff receive --listen 127.0.0.1:0 --token-file "$tmp/tok" --once
numbers --resume-window -1 handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok"
numbers --resume-window 3601 handoff receive --listen 127.0.0.1:0 --token-file "$tmp/tok" --once
numbers --level 99x overlay create nosuchdomain "$tmp/x.ovl"
numbers --probe-timeout 1e1 doctor --probe-kernel "$tmp/none"
numbers --probe-timeout nan doctor --probe-kernel "$tmp/none"
expect "--json: a bad number is a JSON error" 2 "$cloudlet" --json synthesize "$tmp/none.ovl" --max-download -1
json_error "bad number" invalid_arg 2

# Options that exclude each other are refused together (they went on to
# the library, or were ignored).
exclusive() { # exclusive DESC ARGS...
	local desc=$1; shift
	expect "$desc refused" 2 timeout 10 "$cloudlet" --store "$tmp/hs" "$@"
	[ "$(wc -l <"$tmp/err")" = 1 ] && grep -q "exclude each other\|needs --codec" "$tmp/err" \
		&& ok "$desc: says why" || bad "$desc: $(cat "$tmp/err")"
}
mac=52:54:00:00:00:01
exclusive "base resume --mac --network" base resume nosuchbase --mac $mac --network default
exclusive "synthesize --mac --network" synthesize "$tmp/none.ovl" --mac $mac --network default
exclusive "handoff receive --mac --network" handoff receive --listen 127.0.0.1:0 --token-file "$tmp/tok" --once \
	--mac $mac --network default
exclusive "doctor --no-boot-probe --probe-kernel" doctor --no-boot-probe --probe-kernel "$kernel"
exclusive "doctor --no-boot-probe --probe-timeout" doctor --no-boot-probe --probe-timeout 5
exclusive "overlay create --codec none --level" overlay create nosuchdomain "$tmp/x.ovl" --codec none --level 3
exclusive "handoff send --level without a codec" handoff send nosuchdomain 127.0.0.1:9 --token-file "$tmp/tok" --level 3

# A fresh user's default store is made (mkdir -p), not "cannot create
# ~/.local/share/cloudlet"; an empty base list says so (JSON: []).
mkdir -p "$tmp/fresh"; chown 65534:65534 "$tmp/fresh"; chmod 755 "$tmp"
expect "base list as a fresh user" 0 setpriv --reuid=65534 --regid=65534 --clear-groups \
	env -u XDG_DATA_HOME HOME="$tmp/fresh" "$cloudlet" base list
[ -d "$tmp/fresh/.local/share/cloudlet/bases" ] && [ "$(stat -c %a "$tmp/fresh/.local")" = 700 ] \
	&& ok "the default store was created, parents 0700" || bad "fresh store: $(ls -laR "$tmp/fresh" | head -20)"
grep -qxF "no base VMs in the store '$tmp/fresh/.local/share/cloudlet'" "$tmp/out" \
	&& ok "an empty base list says so, the store quoted" || bad "empty base list: $(cat "$tmp/out")"
expect "base list --json, empty store" 0 "$cloudlet" --json --store "$tmp/empty" base list
/usr/bin/python3 -c 'import json,sys; assert json.load(open(sys.argv[1])) == []' "$tmp/out" \
	&& ok "empty base list in JSON is []" || bad "empty base list JSON: $(cat "$tmp/out")"

# File names in the CLI's own messages are quoted.
expect "synthesize --nic-xml of a missing file" 1 "$cloudlet" synthesize "$tmp/none.ovl" --nic-xml "$tmp/nic 1.xml"
grep -qF "'$tmp/nic 1.xml'" "$tmp/err" && [ "$(wc -l <"$tmp/err")" = 1 ] \
	&& ok "the missing --nic-xml file is quoted" || bad "nic-xml message: $(cat "$tmp/err")"
expect "--json synthesize --nic-xml of a missing file" 1 "$cloudlet" --json synthesize "$tmp/none.ovl" --nic-xml "$tmp/nic 1.xml"
json_error "missing --nic-xml file" not_found 1

echo "$pass passed, $failed failed"
[ "$failed" = 0 ]
