// The directory store of base VMs (docs/formats/base.md):
//   <store>/bases/<id>/       one folder per base, files named in its manifest
//   <store>/catalog.json      names, creation data and file stamps per base
//   <store>/instances/<name>/ resumed instances' private files
//   <store>/tmp/              work folders, renamed into place when complete
//   <store>/.lock             flock: catalog writers take it exclusively
// The catalog is replaced by write-temp-then-rename under the lock, so
// concurrent processes never see or make a torn catalog.
#pragma once

#include "store/manifest.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cloudlet::store {

// What is cheap to compare to notice that a file may have changed. ctime is
// left out on purpose: libvirt's DAC driver changes owner and xattrs of
// files a domain uses (a base's backing disk, kernel), not their content.
struct Stamp {
	uint64_t size = 0, mtime_ns = 0, ino = 0;
	bool operator==(const Stamp &o) const { return size == o.size && mtime_ns == o.mtime_ns && ino == o.ino; }
};
Stamp stamp_of(const std::string &path); // throws if missing

struct CatalogEntry {
	std::string id, name, created, source_domain; // source_domain: "" if imported
	std::string imported_from;                    // the package file; "" if created here
	uint64_t bytes = 0;
	double capture_seconds = 0, disk_seconds = 0, hash_seconds = 0, total_seconds = 0;
	std::map<std::string, Stamp> stamps; // file -> stamp when last verified
};

class BaseStore {
public:
	explicit BaseStore(std::string root); // creates the folders if needed
	const std::string &root() const { return root_; }
	std::string base_dir(const std::string &id) const { return root_ + "/bases/" + id; }
	std::string instances_dir() const { return root_ + "/instances"; }
	// A new private work folder under tmp/ (the caller removes or adopts it).
	std::string make_work_dir(const std::string &prefix) const;

	std::vector<CatalogEntry> list() const;
	// By full ID, by name, or by an unambiguous ID prefix of >= 8 digits.
	// Throws CLOUDLET_E_NOT_FOUND.
	CatalogEntry find(const std::string &id_or_name) const;
	// Moves `work_dir` to bases/<id> and records the entry, atomically with
	// respect to other writers. CLOUDLET_E_EXISTS if the ID or name is taken.
	void add(const CatalogEntry &entry, const std::string &work_dir);
	void update_stamps(const std::string &id, const std::map<std::string, Stamp> &stamps);
	// Removes the entry and the folder.
	void remove(const std::string &id);

private:
	std::vector<CatalogEntry> read_catalog() const;
	void write_catalog(const std::vector<CatalogEntry> &entries) const;
	std::string root_;
};

// Removes a folder tree (best effort; used for work folders).
void remove_tree(const std::string &path);

} // namespace cloudlet::store
