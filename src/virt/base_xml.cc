#include "virt/base_xml.h"

#include "util/error.h"
#include "util/xml.h"

#include <libxml/tree.h>

#include <memory>

namespace cloudlet::virt {

namespace {

void remove_node(xmlNode *n) {
	xmlUnlinkNode(n);
	xmlFreeNode(n);
}

void remove_all(xmlDoc *doc, const std::string &expr) {
	for (xmlNode *n : xml::select(doc, expr))
		remove_node(n);
}

xmlNode *child(xmlNode *parent, const char *name) {
	for (xmlNode *c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && xmlStrEqual(c->name, reinterpret_cast<const xmlChar *>(name)))
			return c;
	return nullptr;
}

} // namespace

BaseSource inspect_base_source(const std::string &live_xml, const std::string &cpu_model) {
	auto doc = xml::parse(live_xml, "domain XML");
	xmlDoc *d = doc.get();
	BaseSource b;
	std::string name = xml::value(d, "/domain/name").value_or("?");
	auto refuse = [&](const std::string &why) {
		fail(CLOUDLET_E_INVALID_ARG, "domain " + name + " cannot become a base VM: " + why);
	};
	b.virt_type = xml::value(d, "/domain/@type").value_or("");
	b.machine = xml::value(d, "/domain/os/type/@machine").value_or("");
	// The memory state holds the CPU it ran on: the model cannot change at
	// resume, so the base must be created on the enforced one.
	std::string mode = xml::value(d, "/domain/cpu/@mode").value_or("");
	std::string model = xml::value(d, "/domain/cpu/model").value_or("");
	if (mode != "custom" || model != cpu_model)
		refuse("it runs CPU " + (model.empty() ? "mode '" + mode + "'" : "model '" + model + "'") +
		       ", but bases must run the enforced model '" + cpu_model +
		       "' (<cpu mode='custom' match='exact'><model fallback='forbid'>" + cpu_model + "</model></cpu>)");
	b.cpu_model = model;
	if (xml::select(d, "/domain/features/acpi").empty())
		refuse("ACPI is off; NIC hot-plug after resume needs <features><acpi/></features>");
	if (!xml::select(d, "/domain/os/loader").empty() || !xml::select(d, "/domain/os/nvram").empty())
		refuse("firmware loader/NVRAM files are not supported in bases yet");
	std::string mem = xml::value(d, "/domain/memory").value_or("0");
	std::string unit = xml::value(d, "/domain/memory/@unit").value_or("KiB");
	b.memory_bytes = std::stoull(mem) * (unit == "KiB" ? 1024ull : unit == "MiB" ? 1048576ull : unit == "b" || unit == "bytes" ? 1ull : 1024ull);

	int n = 0;
	for (xmlNode *disk : xml::select(d, "/domain/devices/disk")) {
		std::string device = xml::attr(disk, "device").value_or("disk");
		std::string type = xml::attr(disk, "type").value_or("file");
		xmlNode *src = child(disk, "source");
		if (device != "disk") {
			if (src && (xml::attr(src, "file") || xml::attr(src, "dev")))
				refuse("its " + device + " has media inserted; eject it first");
			continue;
		}
		if (type != "file" || !src || !xml::attr(src, "file"))
			refuse("disk " + std::to_string(n) + " is not a file-backed image (type '" + type + "')");
		BaseDisk bd;
		xmlNode *tgt = child(disk, "target");
		bd.target = tgt ? xml::attr(tgt, "dev").value_or("") : "";
		if (bd.target.empty())
			refuse("a disk has no target device name");
		bd.source = *xml::attr(src, "file");
		xmlNode *drv = child(disk, "driver");
		bd.format = drv ? xml::attr(drv, "type").value_or("raw") : "raw";
		bd.file = "disk-" + bd.target + ".raw";
		// Canonical form: the base's raw copy, named relative to the base.
		xml::set_attr(src, "file", bd.file);
		if (drv)
			xml::set_attr(drv, "type", "raw");
		if (xmlNode *bs = child(disk, "backingStore"))
			remove_node(bs);
		b.disks.push_back(bd);
		n++;
	}
	b.kernel = xml::value(d, "/domain/os/kernel").value_or("");
	b.initrd = xml::value(d, "/domain/os/initrd").value_or("");
	for (auto [expr, file] : {std::pair{"/domain/os/kernel", "kernel"}, std::pair{"/domain/os/initrd", "initrd"}})
		for (xmlNode *k : xml::select(d, expr))
			xmlNodeSetContent(k, reinterpret_cast<const xmlChar *>(file));

	// Identity and host-side state belong to instances, not to the base.
	remove_all(d, "/domain/uuid");
	remove_all(d, "/domain/seclabel");
	remove_all(d, "/domain/devices/interface/target");
	remove_all(d, "/domain/devices/*/alias");
	xmlNode *root = xmlDocGetRootElement(d);
	xmlUnsetProp(root, reinterpret_cast<const xmlChar *>("id"));
	for (xmlNode *nm : xml::select(d, "/domain/name"))
		xmlNodeSetContent(nm, reinterpret_cast<const xmlChar *>("cloudlet-base"));
	b.canonical_xml = xml::to_string(d);
	return b;
}

std::string instance_xml(const std::string &canonical, const InstancePlan &p) {
	auto doc = xml::parse(canonical, "base domain XML");
	xmlDoc *d = doc.get();
	xmlNode *root = xmlDocGetRootElement(d);
	xml::set_attr(root, "type", p.virt_type);
	for (xmlNode *nm : xml::select(d, "/domain/name"))
		xmlNodeSetContent(nm, reinterpret_cast<const xmlChar *>(p.name.c_str()));
	xml::add(root, "uuid", p.uuid);
	for (xmlNode *k : xml::select(d, "/domain/os/kernel"))
		xmlNodeSetContent(k, reinterpret_cast<const xmlChar *>((p.base_dir + "/kernel").c_str()));
	for (xmlNode *k : xml::select(d, "/domain/os/initrd"))
		xmlNodeSetContent(k, reinterpret_cast<const xmlChar *>((p.base_dir + "/initrd").c_str()));
	for (xmlNode *disk : xml::select(d, "/domain/devices/disk[@device='disk' or not(@device)]")) {
		xmlNode *tgt = child(disk, "target");
		std::string target = tgt ? xml::attr(tgt, "dev").value_or("") : "";
		const InstanceDisk *id = nullptr;
		for (const auto &x : p.disks)
			if (x.target == target)
				id = &x;
		if (!id)
			fail(CLOUDLET_E_CORRUPT, "base domain XML has disk '" + target + "' that the base does not hold");
		xmlNode *src = child(disk, "source");
		xml::set_attr(src, "file", id->overlay);
		if (xmlNode *drv = child(disk, "driver"))
			xml::set_attr(drv, "type", "qcow2");
		// Name the backing file explicitly and keep libvirt from relabelling
		// it: the base is shared by every instance and never changes.
		xmlNode *bs = xml::add(disk, "backingStore", {}, {{"type", "file"}});
		xml::add(bs, "format", {}, {{"type", "raw"}});
		xmlNode *bsrc = xml::add(bs, "source", {}, {{"file", id->backing}});
		xml::add(bsrc, "seclabel", {}, {{"model", "dac"}, {"relabel", "no"}});
		xml::add(bs, "backingStore");
	}
	// Every host-side path of a character device or log becomes the
	// instance's own; the device type stays.
	int k = 0;
	for (xmlNode *src : xml::select(d, "/domain/devices/*/source[@path]")) {
		std::string old = *xml::attr(src, "path");
		std::string base = old.substr(old.find_last_of('/') + 1);
		xml::set_attr(src, "path", p.instance_dir + "/" + std::to_string(k++) + "-" + base);
	}
	for (xmlNode *log : xml::select(d, "/domain/devices/*/log[@file]")) {
		std::string old = *xml::attr(log, "file");
		std::string base = old.substr(old.find_last_of('/') + 1);
		xml::set_attr(log, "file", p.instance_dir + "/" + std::to_string(k++) + "-" + base);
	}
	return xml::to_string(d);
}

namespace {

bool hex_attr(xmlNode *n, const char *name, size_t max_digits) {
	auto v = xml::attr(n, name);
	if (!v)
		return true; // libvirt's default
	std::string s = *v;
	if (s.rfind("0x", 0) == 0)
		s = s.substr(2);
	if (s.empty() || s.size() > max_digits)
		return false;
	for (char c : s)
		if (!isxdigit(static_cast<unsigned char>(c)))
			return false;
	return true;
}

bool unicast_mac(const std::string &m) {
	if (m.size() != 17)
		return false;
	for (size_t i = 0; i < m.size(); i++)
		if (i % 3 == 2 ? m[i] != ':' : !isxdigit(static_cast<unsigned char>(m[i])))
			return false;
	return (std::stoi(m.substr(0, 2), nullptr, 16) & 1) == 0;
}

} // namespace

std::string synthesis_xml(const std::string &base_canonical, const std::string &launch_xml, const InstancePlan &plan) {
	auto doc = xml::parse(instance_xml(base_canonical, plan), "instance XML");
	xmlDoc *d = doc.get();
	auto launch = xml::parse(launch_xml, "the overlay's launch domain XML");
	std::vector<xmlNode *> base_nics = xml::select(d, "/domain/devices/interface");
	std::vector<xmlNode *> launch_nics = xml::select(launch.get(), "/domain/devices/interface");
	if (launch_nics.empty())
		return xml::to_string(d); // nothing was plugged in; the base's NICs (if any) are restored as they are
	if (base_nics.empty())
		fail(CLOUDLET_E_UNSUPPORTED, "the launch VM has NICs but its base has none to model them on");
	xmlNode *devices = base_nics[0]->parent;
	// Freed on every path: a refused launch NIC throws mid-loop.
	std::unique_ptr<xmlNode, void (*)(xmlNode *)> templ(nullptr, xmlFreeNode);
	if (plan.nic_backend.empty()) {
		templ.reset(xmlCopyNode(base_nics[0], 1));
	} else {
		auto backend = xml::parse(plan.nic_backend, "the NIC backend");
		xmlNode *root = xmlDocGetRootElement(backend.get());
		if (!root || !xmlStrEqual(root->name, reinterpret_cast<const xmlChar *>("interface")))
			fail(CLOUDLET_E_INVALID_ARG, "the NIC backend must be one <interface> element");
		templ.reset(xmlDocCopyNode(root, d, 1));
	}
	for (xmlNode *n : base_nics)
		remove_node(n);
	for (xmlNode *ln : launch_nics) {
		xmlNode *nic = xmlCopyNode(templ.get(), 1);
		xmlAddChild(devices, nic);
		for (const char *drop : {"mac", "address", "model", "target", "alias"})
			while (xmlNode *c = child(nic, drop))
				remove_node(c);
		xmlNode *mac = child(ln, "mac");
		std::string addr = mac ? xml::attr(mac, "address").value_or("") : "";
		if (!unicast_mac(addr))
			fail(CLOUDLET_E_CORRUPT, "the launch XML has a NIC with MAC '" + addr + "'");
		xml::add(nic, "mac", {}, {{"address", addr}});
		if (xmlNode *model = child(ln, "model")) {
			std::string type = xml::attr(model, "type").value_or("");
			if (type != "virtio" && type != "e1000" && type != "e1000e" && type != "rtl8139")
				fail(CLOUDLET_E_CORRUPT, "the launch XML has a NIC of model '" + type + "'");
			xml::add(nic, "model", {}, {{"type", type}});
		}
		if (xmlNode *pa = child(ln, "address")) {
			if (xml::attr(pa, "type").value_or("") != "pci" || !hex_attr(pa, "domain", 4) || !hex_attr(pa, "bus", 2) ||
			    !hex_attr(pa, "slot", 2) || !hex_attr(pa, "function", 1))
				fail(CLOUDLET_E_CORRUPT, "the launch XML has a NIC with an address that is not a plain PCI address");
			xmlNode *a = xml::add(nic, "address", {}, {{"type", "pci"}});
			for (const char *k : {"domain", "bus", "slot", "function"})
				if (auto v = xml::attr(pa, k))
					xml::set_attr(a, k, *v);
		}
	}
	return xml::to_string(d);
}

std::vector<NicXml> domain_nics(const std::string &live_xml) {
	auto doc = xml::parse(live_xml, "domain XML");
	std::vector<NicXml> out;
	for (xmlNode *nic : xml::select(doc.get(), "/domain/devices/interface")) {
		NicXml n;
		xmlNode *mac = child(nic, "mac");
		n.mac = mac ? xml::attr(mac, "address").value_or("") : "";
		xmlBufferPtr buf = xmlBufferCreate();
		xmlNodeDump(buf, doc.get(), nic, 0, 0);
		n.current = reinterpret_cast<const char *>(xmlBufferContent(buf));
		xmlBufferFree(buf);
		auto fresh = xml::parse(n.current, "interface XML");
		for (const char *drop : {"/interface/mac", "/interface/target", "/interface/address", "/interface/alias"})
			remove_all(fresh.get(), drop);
		n.fresh = xml::to_string(fresh.get());
		out.push_back(n);
	}
	return out;
}

} // namespace cloudlet::virt
