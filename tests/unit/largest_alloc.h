// The largest single allocation by operator new since the last reset: what a
// declared size made a reader allocate before its bytes were there. Include
// in one file of a test program (it replaces the global operator new).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdlib>
#include <new>

inline std::atomic<size_t> g_largest_alloc{0};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete" // malloc/free behind new/delete is the point here
#endif
void *operator new(size_t n) {
	size_t seen = g_largest_alloc.load();
	while (n > seen && !g_largest_alloc.compare_exchange_weak(seen, n)) {
	}
	if (void *p = malloc(n ? n : 1))
		return p;
	throw std::bad_alloc();
}
void operator delete(void *p) noexcept { free(p); }
void operator delete(void *p, size_t) noexcept { free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
