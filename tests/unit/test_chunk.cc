// The chunk vocabulary (src/chunk/): packed references round-trip at their
// bounds, the shift is carried in the record head, and the one record
// validator accepts every well-formed record and names what is wrong with
// each kind of bad one (the overlay reader, the handoff ITEMS decoder and
// the handoff applier all rely on it).
#include "chunk/chunk_record.h"
#include "chunk/chunk_ref.h"
#include "chunk/record_check.h"

#include <cstdarg>
#include <cstddef>
#include <csetjmp>
#include <cstdint>
#include <cstring>
#include <random>
#include <set>
#include <string>

extern "C" {
#include <cmocka.h>
}

using namespace cloudlet;
using chunk::ChunkKind;
using chunk::ChunkRecord;
using chunk::kChunkSize;

namespace {

// Memory of 100 pages, disk 0 of 10 chunks and a half (its last chunk is
// partial), disk 1 of 4 chunks; the base has 50 pages and disks of 8 and 4
// chunks. Chunk keys 0:7 and 1:3 and ordinal 5 are "stored".
chunk::RecordBounds full_bounds() {
	chunk::RecordBounds b;
	b.disks = 2;
	b.space_chunks = {100, 11, 4};
	b.base_known = true;
	b.base_memory_pages = 50;
	b.base_disk_bytes = {8 * kChunkSize, 4 * kChunkSize};
	b.stored = [](uint64_t ref) {
		return ref == chunk::pack_ref(0, 7) || ref == chunk::pack_ref(1, 3) || ref == 5;
	};
	return b;
}

ChunkRecord rec(uint8_t space, ChunkKind kind, uint64_t chunk, uint64_t ref = 0, int16_t shift = 0) {
	return {space, kind, chunk, ref, shift};
}

void accepted(const ChunkRecord &r, const chunk::RecordBounds &b) {
	std::string why = chunk::record_problem(r, b);
	if (!why.empty())
		fail_msg("refused space %u kind %u chunk %llu ref %llu shift %d: %s", r.space, unsigned(r.kind),
		         (unsigned long long)r.chunk, (unsigned long long)r.ref, r.shift, why.c_str());
}

// Refused, and the reason names `what`.
void refused(const ChunkRecord &r, const chunk::RecordBounds &b, const char *what) {
	std::string why = chunk::record_problem(r, b);
	if (why.empty())
		fail_msg("accepted space %u kind %u chunk %llu ref %llu shift %d (expected: %s)", r.space, unsigned(r.kind),
		         (unsigned long long)r.chunk, (unsigned long long)r.ref, r.shift, what);
	if (!strstr(why.c_str(), what))
		fail_msg("refused with '%s', expected it to say '%s'", why.c_str(), what);
}

} // namespace

static void test_refs_round_trip(void **) {
	static_assert(chunk::kMaxRefPosition == (uint64_t(1) << 56) - 1);
	// The packed layout is the formats' (docs/formats/overlay.md): selector in the top byte.
	assert_true(chunk::pack_ref(0, 0) == 0);
	assert_true(chunk::pack_ref(1, 2) == (uint64_t(1) << 56 | 2));
	assert_true(chunk::pack_ref(255, chunk::kMaxRefPosition) == ~uint64_t(0));
	assert_true(chunk::pack_ref(3, 512 * 9) == (uint64_t(3) << 56 | 4608));
	const uint64_t positions[] = {0, 1, 4095, 4096, uint64_t(1) << 40, chunk::kMaxRefPosition - 1,
	                              chunk::kMaxRefPosition};
	for (unsigned s : {0u, 1u, 2u, 127u, 254u, 255u})
		for (uint64_t p : positions) {
			chunk::RefParts u = chunk::unpack_ref(chunk::pack_ref(static_cast<uint8_t>(s), p));
			assert_int_equal(u.selector, s);
			assert_true(u.position == p);
		}
	// Every uint64 is some reference: unpack then pack gives it back.
	std::mt19937_64 rng(17);
	for (int i = 0; i < 10000; i++) {
		uint64_t v = rng();
		chunk::RefParts u = chunk::unpack_ref(v);
		assert_true(u.position <= chunk::kMaxRefPosition);
		assert_true(chunk::pack_ref(u.selector, u.position) == v);
	}
	// Distinct (selector, position) pairs give distinct keys.
	std::set<uint64_t> keys;
	for (unsigned s = 0; s < 4; s++)
		for (uint64_t p = 0; p < 64; p++)
			keys.insert(chunk::pack_ref(static_cast<uint8_t>(s), p));
	assert_int_equal(keys.size(), 4 * 64);
}

static void test_shift_in_record_head(void **) {
	assert_int_equal(kChunkSize, 4096);
	assert_true(chunk::valid_shift(1) && chunk::valid_shift(-1));
	assert_true(chunk::valid_shift(4095) && chunk::valid_shift(-4095));
	assert_false(chunk::valid_shift(0));
	assert_false(chunk::valid_shift(4096) || chunk::valid_shift(-4096));
	for (int s : {1, -1, 212, -212, 4095, -4095, 0x1234, -32768, 32767}) {
		uint8_t head[8] = {0, static_cast<uint8_t>(ChunkKind::ShiftXor)};
		chunk::put_shift(head, static_cast<int16_t>(s));
		assert_int_equal(chunk::get_shift(head), s);
		assert_true(chunk::reserved_bytes_clear(head));
	}
	uint8_t head[8] = {0, static_cast<uint8_t>(ChunkKind::ShiftXor)};
	chunk::put_shift(head, -2); // little-endian int16
	assert_int_equal(head[2], 0xfe);
	assert_int_equal(head[3], 0xff);
	// Bytes 2-3 belong to the shift only for SHIFT_XOR; 4-7 are always reserved.
	uint8_t data[8] = {1, static_cast<uint8_t>(ChunkKind::Data)};
	assert_true(chunk::reserved_bytes_clear(data));
	for (int i = 2; i < 8; i++) {
		uint8_t d[8] = {1, static_cast<uint8_t>(ChunkKind::Data)};
		uint8_t s[8] = {1, static_cast<uint8_t>(ChunkKind::ShiftXor)};
		d[i] = 1;
		s[i] = 1;
		assert_false(chunk::reserved_bytes_clear(d));
		assert_true(chunk::reserved_bytes_clear(s) == (i < 4));
	}
}

static void test_kinds(void **) {
	int stored = 0, refer = 0;
	for (int k = 1; k < chunk::kChunkKinds; k++) {
		stored += chunk::stores_payload(static_cast<ChunkKind>(k));
		refer += chunk::refers_to_stored(static_cast<ChunkKind>(k));
	}
	assert_int_equal(stored, 3); // Data, DataXor, ShiftXor
	assert_int_equal(refer, 2);  // Self, ShiftXor
	assert_true(chunk::stores_payload(ChunkKind::ShiftXor) && chunk::refers_to_stored(ChunkKind::ShiftXor));
}

static void test_validator_accepts_good_records(void **) {
	auto b = full_bounds();
	accepted(rec(0, ChunkKind::Zero, 0), b);
	accepted(rec(0, ChunkKind::Zero, 99), b);
	accepted(rec(2, ChunkKind::Zero, 3), b);
	accepted(rec(0, ChunkKind::BaseMemory, 1, 49), b);
	accepted(rec(1, ChunkKind::BaseMemory, 10, 0), b); // a disk chunk may equal a base memory page
	accepted(rec(0, ChunkKind::BaseDisk, 5, chunk::pack_ref(0, 7 * kChunkSize)), b);
	accepted(rec(1, ChunkKind::BaseDisk, 5, chunk::pack_ref(1, 512)), b); // 512-byte windows
	accepted(rec(0, ChunkKind::Self, 8, chunk::pack_ref(0, 7)), b);
	accepted(rec(2, ChunkKind::Self, 0, 5), b);
	accepted(rec(0, ChunkKind::Data, 99), b);
	accepted(rec(1, ChunkKind::Data, 10), b); // the partial last chunk
	accepted(rec(0, ChunkKind::DataXor, 49), b);
	accepted(rec(1, ChunkKind::DataXor, 7), b);
	accepted(rec(2, ChunkKind::DataXor, 3), b); // base disk 1's last chunk
	accepted(rec(0, ChunkKind::ShiftXor, 1, chunk::pack_ref(1, 3), 212), b);
	accepted(rec(0, ChunkKind::ShiftXor, 1, 5, -4095), b);
	accepted(rec(0, ChunkKind::ShiftXor, 1, 5, 4095), b);
}

static void test_validator_refuses_bad_records(void **) {
	auto b = full_bounds();
	refused(rec(3, ChunkKind::Data, 0), b, "space 3 does not exist");
	refused(rec(255, ChunkKind::Zero, 0), b, "space 255");
	refused(rec(0, static_cast<ChunkKind>(0), 0), b, "unknown kind 0");
	refused(rec(0, static_cast<ChunkKind>(8), 0), b, "unknown kind 8");
	refused(rec(0, static_cast<ChunkKind>(200), 0), b, "unknown kind 200");
	refused(rec(0, ChunkKind::Zero, 100), b, "chunk 100 is beyond the end of space 0");
	refused(rec(1, ChunkKind::Data, 11), b, "chunk 11 is beyond the end of space 1");
	refused(rec(2, ChunkKind::Zero, uint64_t(1) << 60), b, "beyond the end of space 2");
	refused(rec(0, ChunkKind::Data, 1, 0, 8), b, "shift 8 on a record that takes none");
	refused(rec(0, ChunkKind::Zero, 1, 1), b, "zero record with a reference");
	refused(rec(0, ChunkKind::BaseMemory, 1, 50), b, "base memory page 50 does not exist");
	// A base disk reference: unaligned, to a disk that does not exist, past the end of one.
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(0, 100)), b, "base disk reference 0:100");
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(2, 0)), b, "base disk reference 2:0");
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(0, 7 * kChunkSize + 512)), b, "out of range");
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(1, 4 * kChunkSize)), b, "out of range");
	refused(rec(0, ChunkKind::Self, 1, chunk::pack_ref(0, 8)), b, "not stored");
	refused(rec(0, ChunkKind::Self, 1, 6), b, "not stored");
	refused(rec(0, ChunkKind::Data, 1, 1), b, "data record with a reference");
	refused(rec(0, ChunkKind::DataXor, 1, 1), b, "data record with a reference");
	refused(rec(0, ChunkKind::DataXor, 50), b, "a delta against a base chunk that does not exist");
	refused(rec(1, ChunkKind::DataXor, 8), b, "a delta against a base chunk");
}

static void test_validator_unknown_limits_unchecked(void **) {
	// What the handoff ITEMS decoder knows: the session's spaces only.
	chunk::RecordBounds spaces;
	spaces.disks = 1;
	accepted(rec(0, ChunkKind::Zero, uint64_t(1) << 50), spaces);
	accepted(rec(0, ChunkKind::BaseMemory, 1, uint64_t(1) << 50), spaces);
	accepted(rec(1, ChunkKind::BaseDisk, 1, chunk::pack_ref(0, uint64_t(1) << 40)), spaces);
	accepted(rec(0, ChunkKind::Self, 1, 12345), spaces);
	accepted(rec(0, ChunkKind::ShiftXor, 1, 12345, -7), spaces);
	accepted(rec(1, ChunkKind::DataXor, 1 << 20), spaces);
	// ... and what the record alone shows is still checked.
	refused(rec(2, ChunkKind::Zero, 0), spaces, "space 2 does not exist");
	refused(rec(0, static_cast<ChunkKind>(9), 0), spaces, "unknown kind 9");
	refused(rec(0, ChunkKind::ShiftXor, 1, 3, 0), spaces, "shift 0 is out of range");
	refused(rec(0, ChunkKind::ShiftXor, 1, 3, 4096), spaces, "shift 4096 is out of range");
	refused(rec(0, ChunkKind::ShiftXor, 1, 3, -4096), spaces, "shift -4096 is out of range");
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(1, 0)), spaces, "base disk reference 1:0");
	refused(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(0, 4097)), spaces, "base disk reference 0:4097");
	refused(rec(0, ChunkKind::Zero, 1, 2), spaces, "zero record with a reference");
	refused(rec(1, ChunkKind::Data, 1, 2), spaces, "data record with a reference");
	// An overlay read without its base: chunk numbers checked, references into the base not.
	auto b = full_bounds();
	b.base_known = false;
	accepted(rec(0, ChunkKind::BaseMemory, 1, 1000), b);
	accepted(rec(0, ChunkKind::DataXor, 99), b);
	accepted(rec(0, ChunkKind::BaseDisk, 1, chunk::pack_ref(1, 1 << 30)), b);
	refused(rec(0, ChunkKind::Data, 100), b, "beyond the end of space 0");
	refused(rec(0, ChunkKind::Self, 1, 6), b, "not stored");
}

int main(void) {
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_refs_round_trip),
	    cmocka_unit_test(test_shift_in_record_head),
	    cmocka_unit_test(test_kinds),
	    cmocka_unit_test(test_validator_accepts_good_records),
	    cmocka_unit_test(test_validator_refuses_bad_records),
	    cmocka_unit_test(test_validator_unknown_limits_unchecked),
	};
	return cmocka_run_group_tests(tests, nullptr, nullptr);
}
