// Postcopy, as stock QEMU's incoming side speaks it (QEMU 7.2's
// migration/savevm.c and migration/postcopy-ram.c are the specification;
// docs/early-start.md says what we send and accept): we are the migration
// source of a QEMU that runs the guest before its RAM has arrived and asks
// for the pages it faults on over a return path on the same socket.
//
//   head ─ OPEN_RETURN_PATH ─ PING 1 ─ POSTCOPY_ADVISE ─ RAM setup
//   POSTCOPY_RAM_DISCARD (one page) ─ PACKAGED { POSTCOPY_LISTEN, device sections, PING 3, POSTCOPY_RUN }
//   RAM PART sections (each page at most once) ─ RAM END ─ EOF
//
// Here only the bytes: the commands we write and the return-path messages
// we parse. Who sends which page when is the caller's (virt/postcopy_restore).
#pragma once

#include "byte_reader.h"
#include "image_file.h"
#include "stream_writer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace cloudlet::qemu {

// QEMU_VM_COMMAND numbers (MIG_CMD_*).
enum MigCommand : uint16_t {
	kCmdOpenReturnPath = 1,
	kCmdPing = 2,
	kCmdPostcopyAdvise = 3,
	kCmdPostcopyListen = 4,
	kCmdPostcopyRun = 5,
	kCmdPostcopyRamDiscard = 6,
	kCmdPackaged = 7,
};

// Return-path message types (MIG_RP_MSG_*) we accept.
enum ReturnMessageType : uint16_t {
	kRpShut = 1,       // be32: 0 when the destination loaded everything
	kRpPong = 2,       // be32: the PING's value
	kRpReqPagesId = 3, // be64 offset, be32 length, u8-length block name
	kRpReqPages = 4,   // be64 offset, be32 length (the block of the last REQ_PAGES_ID)
};

// PING values we send: after the setup, and inside the package right
// before RUN (its PONG says the device state has loaded).
constexpr uint32_t kPingSetup = 1, kPingDevicesLoaded = 3;

class PostcopyWriter {
public:
	PostcopyWriter(ByteSink &out, const StreamInfo &layout) : out_(out), writer_(out, layout), info_(layout) {}
	// Header, configuration, OPEN_RETURN_PATH, PING 1, POSTCOPY_ADVISE (host
	// and target page size 4096), the RAM block table.
	void begin();
	// POSTCOPY_RAM_DISCARD of the first page (see postcopy_stream.cc), then
	// the package: LISTEN, the device sections of `device_state` (as a memory
	// image holds it: without its EOF marker and description), PING 3, RUN.
	// From here the destination may run the guest, and every page it lacks
	// faults until sent.
	void start(const std::vector<uint8_t> &device_state);
	// One RAM PART section with these pages (ascending linear page numbers
	// within a block; zero pages as ZERO). A page must not be sent twice
	// after start(): QEMU places pages with UFFDIO_COPY, which fails on a
	// page already there and ends the migration.
	void pages(const PageProvider &img, const std::vector<uint64_t> &linear) { writer_.pages(img, linear); }
	// RAM END (EOS only) and the EOF marker.
	void end();

private:
	ByteSink &out_;
	StreamWriter writer_;
	StreamInfo info_;
};

// One message from the destination.
struct ReturnMessage {
	uint16_t type = 0;
	uint32_t value = 0;      // SHUT, PONG
	uint64_t first_page = 0; // REQ_PAGES*: linear page numbers, checked inside the block
	uint64_t pages = 0;
};

// Reads return-path messages, checking every field: unknown types, lengths
// other than the type's, block names we did not send and ranges outside
// their block are CLOUDLET_E_CORRUPT naming the offset. Returns false at a
// clean end of input (between messages).
class ReturnPathReader {
public:
	ReturnPathReader(Source &src, const StreamInfo &layout) : r_(src, "QEMU's return path", 4096), info_(layout) {}
	bool next(ReturnMessage &m);

private:
	Reader r_;
	const StreamInfo &info_;
	int block_ = -1; // of the last REQ_PAGES_ID
};

} // namespace cloudlet::qemu
