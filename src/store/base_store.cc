#include "store/base_store.h"

#include "store/owner.h"
#include "util/error.h"
#include "util/json.h"
#include "util/small_file.h"
#include "util/unique_fd.h"

#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <memory>

namespace cloudlet::store {

namespace {

void make_dir(const std::string &p, mode_t mode) {
	if (mkdir(p.c_str(), mode) != 0 && errno != EEXIST)
		fail_errno("cannot create " + p, errno);
}

// Exclusive catalog lock for the life of the object.
class Lock {
public:
	explicit Lock(const std::string &path) : fd_(open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
		if (!fd_)
			fail_errno("cannot open " + path, errno);
		while (flock(fd_.get(), LOCK_EX) != 0)
			if (errno != EINTR)
				fail_errno("cannot lock " + path, errno);
	}

private:
	UniqueFd fd_; // the lock goes with it
};

double get_double(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? json_object_get_double(v) : 0;
}
uint64_t get_u64(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) ? static_cast<uint64_t>(json_object_get_int64(v)) : 0;
}
std::string get_str(json_object *o, const char *k) {
	json_object *v = nullptr;
	return json_object_object_get_ex(o, k, &v) && json_object_is_type(v, json_type_string) ? json_object_get_string(v)
	                                                                                       : "";
}

} // namespace

Stamp stamp_of(const std::string &path) {
	struct stat st {};
	if (stat(path.c_str(), &st) != 0)
		fail_errno("cannot stat " + path, errno);
	return {static_cast<uint64_t>(st.st_size),
	        static_cast<uint64_t>(st.st_mtim.tv_sec) * 1000000000ull + static_cast<uint64_t>(st.st_mtim.tv_nsec),
	        static_cast<uint64_t>(st.st_ino)};
}

void remove_tree(const std::string &path) {
	if (path.empty())
		return;
	nftw(
	    path.c_str(),
	    [](const char *p, const struct stat *, int, struct FTW *) { return remove(p) == 0 ? 0 : 0; }, 16,
	    FTW_DEPTH | FTW_PHYS);
}

BaseStore::BaseStore(std::string root) : root_(std::move(root)) {
	while (root_.size() > 1 && root_.back() == '/')
		root_.pop_back();
	make_dir(root_, 0755);
	// 0755: QEMU (its own user) reads base files through these folders.
	make_dir(root_ + "/bases", 0755);
	make_dir(root_ + "/instances", 0755);
	make_dir(root_ + "/tmp", 0700);
}

std::string BaseStore::make_work_dir(const std::string &prefix) const {
	// The owner's tag in the name: recovery removes folders of dead owners.
	std::string t = root_ + "/tmp/" + prefix + process_tag(this_process()) + "-XXXXXX";
	if (!mkdtemp(t.data()))
		fail_errno("cannot create a work folder in " + root_ + "/tmp", errno);
	chmod(t.c_str(), 0755);
	return t;
}

std::vector<CatalogEntry> BaseStore::read_catalog() const {
	std::string path = root_ + "/catalog.json";
	std::optional<std::string> read = read_small_file(path, 64u << 20);
	if (!read)
		return {};
	const std::string &text = *read;
	Json doc(json_tokener_parse(text.c_str()));
	json_object *bases = nullptr;
	if (!doc || !json_object_object_get_ex(doc.get(), "bases", &bases) ||
	    !json_object_is_type(bases, json_type_array))
		fail(CLOUDLET_E_CORRUPT, path + " is not a libcloudlet catalog");
	std::vector<CatalogEntry> out;
	for (size_t i = 0; i < json_object_array_length(bases); i++) {
		json_object *b = json_object_array_get_idx(bases, i);
		CatalogEntry e;
		e.id = get_str(b, "id");
		e.name = get_str(b, "name");
		e.created = get_str(b, "created");
		e.source_domain = get_str(b, "source_domain");
		e.imported_from = get_str(b, "imported_from");
		e.bytes = get_u64(b, "bytes");
		json_object *t = nullptr;
		if (json_object_object_get_ex(b, "timings", &t)) {
			e.capture_seconds = get_double(t, "capture");
			e.disk_seconds = get_double(t, "disks");
			e.hash_seconds = get_double(t, "hashing");
			e.total_seconds = get_double(t, "total");
		}
		json_object *stamps = nullptr;
		if (json_object_object_get_ex(b, "stamps", &stamps)) {
			json_object_object_foreach(stamps, file, s) {
				e.stamps[file] = Stamp{get_u64(s, "size"), get_u64(s, "mtime_ns"), get_u64(s, "ino")};
			}
		}
		if (e.id.size() != 64)
			fail(CLOUDLET_E_CORRUPT, path + ": entry " + std::to_string(i) + " has no valid id");
		out.push_back(e);
	}
	return out;
}

void BaseStore::write_catalog(const std::vector<CatalogEntry> &entries) const {
	Json doc(json_object_new_object());
	json_object_object_add(doc.get(), "format", json_object_new_int(1));
	json_object *bases = json_object_new_array();
	for (const auto &e : entries) {
		json_object *b = json_object_new_object();
		json_object_object_add(b, "id", json_object_new_string(e.id.c_str()));
		json_object_object_add(b, "name", json_object_new_string(e.name.c_str()));
		json_object_object_add(b, "created", json_object_new_string(e.created.c_str()));
		json_object_object_add(b, "source_domain", json_object_new_string(e.source_domain.c_str()));
		if (!e.imported_from.empty())
			json_object_object_add(b, "imported_from", json_object_new_string(e.imported_from.c_str()));
		json_object_object_add(b, "bytes", json_object_new_int64(static_cast<int64_t>(e.bytes)));
		json_object *t = json_object_new_object();
		json_object_object_add(t, "capture", json_object_new_double(e.capture_seconds));
		json_object_object_add(t, "disks", json_object_new_double(e.disk_seconds));
		json_object_object_add(t, "hashing", json_object_new_double(e.hash_seconds));
		json_object_object_add(t, "total", json_object_new_double(e.total_seconds));
		json_object_object_add(b, "timings", t);
		json_object *stamps = json_object_new_object();
		for (const auto &[file, s] : e.stamps) {
			json_object *so = json_object_new_object();
			json_object_object_add(so, "size", json_object_new_int64(static_cast<int64_t>(s.size)));
			json_object_object_add(so, "mtime_ns", json_object_new_int64(static_cast<int64_t>(s.mtime_ns)));
			json_object_object_add(so, "ino", json_object_new_int64(static_cast<int64_t>(s.ino)));
			json_object_object_add(stamps, file.c_str(), so);
		}
		json_object_object_add(b, "stamps", stamps);
		json_object_array_add(bases, b);
	}
	json_object_object_add(doc.get(), "bases", bases);
	std::string text = std::string(json_object_to_json_string_ext(doc.get(), JSON_C_TO_STRING_PRETTY)) + "\n";
	std::string path = root_ + "/catalog.json", tmp = path + ".tmp";
	int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		fail_errno("cannot create " + tmp, errno);
	bool ok = write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()) && fsync(fd) == 0;
	int e = errno;
	close(fd);
	if (!ok) {
		unlink(tmp.c_str());
		fail_errno("cannot write " + tmp, e);
	}
	if (rename(tmp.c_str(), path.c_str()) != 0)
		fail_errno("cannot replace " + path, errno);
}

std::vector<CatalogEntry> BaseStore::list() const { return read_catalog(); }

CatalogEntry BaseStore::find(const std::string &key) const {
	auto all = read_catalog();
	for (const auto &e : all)
		if (e.id == key || e.name == key)
			return e;
	if (key.size() >= 8) {
		const CatalogEntry *hit = nullptr;
		for (const auto &e : all)
			if (e.id.compare(0, key.size(), key) == 0) {
				if (hit)
					fail(CLOUDLET_E_INVALID_ARG, "'" + key + "' matches more than one base ID");
				hit = &e;
			}
		if (hit)
			return *hit;
	}
	fail(CLOUDLET_E_NOT_FOUND, "no base '" + key + "' in the store " + root_);
}

void BaseStore::add(const CatalogEntry &entry, const std::string &work_dir) {
	Lock lock(root_ + "/.lock");
	auto all = read_catalog();
	for (const auto &e : all) {
		if (e.id == entry.id)
			fail(CLOUDLET_E_EXISTS, "base " + entry.id + " is already in the store (as '" + e.name + "')");
		if (!entry.name.empty() && e.name == entry.name)
			fail(CLOUDLET_E_EXISTS, "a base named '" + entry.name + "' is already in the store (" + e.id + ")");
	}
	std::string dest = base_dir(entry.id);
	if (access(dest.c_str(), F_OK) == 0)
		remove_tree(dest); // a leftover of a base removed from the catalog
	if (rename(work_dir.c_str(), dest.c_str()) != 0)
		fail_errno("cannot move " + work_dir + " to " + dest, errno);
	all.push_back(entry);
	try {
		write_catalog(all);
	} catch (...) {
		rename(dest.c_str(), work_dir.c_str());
		throw;
	}
}

void BaseStore::update_stamps(const std::string &id, const std::map<std::string, Stamp> &stamps) {
	Lock lock(root_ + "/.lock");
	auto all = read_catalog();
	for (auto &e : all)
		if (e.id == id) {
			e.stamps = stamps;
			write_catalog(all);
			return;
		}
}

void BaseStore::remove(const std::string &id) {
	Lock lock(root_ + "/.lock");
	auto all = read_catalog();
	std::vector<CatalogEntry> keep;
	bool found = false;
	for (auto &e : all) {
		if (e.id == id)
			found = true;
		else
			keep.push_back(e);
	}
	if (!found)
		fail(CLOUDLET_E_NOT_FOUND, "no base " + id + " in the store " + root_);
	write_catalog(keep);
	// The catalog no longer names it: move aside, then delete.
	std::string dest = base_dir(id), gone = make_work_dir("removed-");
	rmdir(gone.c_str());
	if (rename(dest.c_str(), gone.c_str()) == 0)
		remove_tree(gone);
}

} // namespace cloudlet::store
