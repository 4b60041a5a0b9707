#!/bin/sh
# The "app step" on the Debian test guest: what an application developer
# does to a resumed base before making an overlay of it, and the fingerprint
# the tests compare after synthesis and handoff. Runs inside the guest, as
# root, fed through the harness's shell channel:
#
#   app-step.sh setup         install the app (files, a database, services)
#   app-step.sh fingerprint   print what must be the same on every copy
#   app-step.sh cold          the same, with the page cache dropped first
#
# The app: 16 MiB of random data read through a program and served over
# HTTP (so copies of it sit in heap and socket buffers at in-page offsets,
# as with any real app), copies of python3.11 and shared libraries, 5 MB of
# text, a 100 000-row sqlite database, a systemd http.server unit and a
# counter unit that keeps a count in tmpfs (memory only).
set -eu
app=/srv/app

setup() {
	mkdir -p $app/lib
	head -c 16777216 /dev/urandom > $app/blob.bin
	cp /usr/bin/python3.11 $app/python3.11
	for l in libc.so.6 libm.so.6 libexpat.so.1 libz.so.1 libsqlite3.so.0; do
		cp -L /usr/lib/x86_64-linux-gnu/$l $app/lib/
	done
	python3 - <<'PY'
import hashlib, random, sqlite3
r = random.Random(42)
words = ["cloudlet", "overlay", "handoff", "synthesis", "base", "edge", "latency", "mobile", "vm", "qemu"]
with open("/srv/app/app.log", "w") as f:
    n = 0
    while n < 5_000_000:
        line = "%06d GET /api/v1/%s?id=%d 200 %s\n" % (n, r.choice(words), r.randrange(10**6), r.choice(words))
        f.write(line)
        n += len(line)
db = sqlite3.connect("/srv/app/app.db")
db.execute("create table items (id integer primary key, name text, score real)")
db.executemany("insert into items values (?, ?, ?)",
               ((i, "%s-%d" % (r.choice(words), i), r.random()) for i in range(100_000)))
db.commit()
db.close()
# Read the blob as an application would (its bytes now also sit in the
# heap of this process until it exits, then in freed pages).
print(hashlib.sha256(open("/srv/app/blob.bin", "rb").read()).hexdigest())
PY
	cat > /etc/systemd/system/cloudlet-app.service <<'UNIT'
[Unit]
Description=libcloudlet test app (http.server over /srv/app)
[Service]
ExecStart=/usr/bin/python3 -m http.server 8080 --bind 127.0.0.1 --directory /srv/app
UNIT
	cat > /etc/systemd/system/cloudlet-counter.service <<'UNIT'
[Unit]
Description=libcloudlet test counter (in tmpfs: memory state only)
[Service]
ExecStart=/bin/sh -c 'n=0; while :; do n=$((n+1)); echo $n > /run/counter.tmp; mv /run/counter.tmp /run/counter; sleep 0.2; done'
UNIT
	systemctl daemon-reload
	systemctl start cloudlet-app.service cloudlet-counter.service
	# Fetch the blob through the server once: socket buffers hold it too.
	for _ in $(seq 50); do
		python3 -c 'import urllib.request,sys; sys.exit(len(urllib.request.urlopen("http://127.0.0.1:8080/blob.bin").read()) != 16777216)' \
			2>/dev/null && break
		sleep 0.2
	done
	sync
}

fingerprint() {
	cd $app
	sha256sum blob.bin python3.11 lib/* app.log app.db
	sqlite3 app.db 'select count(*), round(sum(score), 6) from items'
	systemctl is-active cloudlet-app.service cloudlet-counter.service
	python3 -c 'import urllib.request,hashlib; print("http", hashlib.sha256(urllib.request.urlopen("http://127.0.0.1:8080/blob.bin").read()).hexdigest())'
}

case "${1:-}" in
setup) setup ;;
fingerprint) fingerprint ;;
cold) sync; echo 3 > /proc/sys/vm/drop_caches; fingerprint ;;
*) echo "usage: app-step.sh setup|fingerprint|cold" >&2; exit 2 ;;
esac
