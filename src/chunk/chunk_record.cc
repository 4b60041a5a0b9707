#include "chunk/chunk_record.h"

namespace cloudlet::chunk {

void put_shift(uint8_t *record, int16_t shift) {
	uint16_t u = static_cast<uint16_t>(shift);
	record[2] = static_cast<uint8_t>(u);
	record[3] = static_cast<uint8_t>(u >> 8);
}

int16_t get_shift(const uint8_t *record) { return static_cast<int16_t>(record[2] | record[3] << 8); }

bool reserved_bytes_clear(const uint8_t *q) {
	bool shifted = q[1] == static_cast<uint8_t>(ChunkKind::ShiftXor);
	return !(q[4] | q[5] | q[6] | q[7]) && (shifted || !(q[2] | q[3]));
}

} // namespace cloudlet::chunk
