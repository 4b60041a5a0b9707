#!/bin/bash
# Makes the certificates the handoff TLS tests use, in QEMU's and libvirt's
# migration layout (docs/security.md):
#   DIR/good/   ca-cert.pem, server-cert.pem, server-key.pem, client-cert.pem,
#               client-key.pem: one CA, a server certificate for 127.0.0.1
#               and localhost, a client certificate
#   DIR/rogue/  the same layout from another CA (a peer the good side must refuse)
#   DIR/wrong-name/  the good CA's server certificate for another host
# Keys are EC P-256 (fast to make); certificates valid for a day.
#   tests/data/make-test-pki.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
req() { openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "$2" -keyout "$1-key.pem" -out "$1.csr" 2>/dev/null; }
sign() { # NAME CA-DIR EXTENSIONS
	printf '%s\n' "$3" > "$1.ext"
	openssl x509 -req -in "$1.csr" -CA "$2/ca-cert.pem" -CAkey "$2/ca-key.pem" -CAcreateserial -days 1 \
		-extfile "$1.ext" -out "$1-cert.pem" 2>/dev/null
}
make_ca() { # DIR CN
	mkdir -p "$1"
	openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -subj "/CN=$2" -days 1 \
		-keyout "$1/ca-key.pem" -out "$1/ca-cert.pem" \
		-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}
server_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost'
client_ext='basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth'
for ca in good rogue; do
	make_ca "$ca" "libcloudlet test CA ($ca)"
	(cd "$ca" && req server "/CN=cloudlet-a" && sign server . "$server_ext" &&
		req client "/CN=cloudlet-b" && sign client . "$client_ext")
done
mkdir -p wrong-name
cp good/ca-cert.pem good/client-cert.pem good/client-key.pem wrong-name/
(cd wrong-name && req server "/CN=elsewhere" &&
	sign server ../good "${server_ext/IP:127.0.0.1,DNS:localhost/DNS:elsewhere.example}")
rm -f ./*/*.csr ./*/*.ext ./*/*.srl
chmod 600 ./*/*-key.pem
