/* Assertions that stay on in production, and the attributes every module uses.
 * A member that carries on after an invariant broke can acknowledge a write it later
 * loses; crashing turns that into a restart the cluster absorbs (STYLE.md §4).
 * Not here: error codes for conditions that can legitimately happen (base/err.h). */
#ifndef KETCH_BASE_ASSERT_H
#define KETCH_BASE_ASSERT_H

#define K_MUST_USE    __attribute__((warn_unused_result))
#define K_NORETURN    __attribute__((noreturn))
#define K_LIKELY(x)   __builtin_expect(!!(x), 1)
#define K_UNLIKELY(x) __builtin_expect(!!(x), 0)

/* Prints "assertion failed: COND at FILE:LINE (FUNC)" to stderr and aborts. */
K_NORETURN void k_assert_fail(const char *cond, const char *file, int line, const char *func);

/* Never compiled out: NDEBUG does not touch it. */
#define k_assert(cond)                                                                             \
    (K_LIKELY(cond) ? (void)0 : k_assert_fail(#cond, __FILE__, __LINE__, __func__))

/* Expensive checks (walks of whole structures): on in unit, sim and sanitizer builds. */
#ifdef KETCH_SLOW_ASSERTS
#define k_assert_slow(cond) k_assert(cond)
#else
#define k_assert_slow(cond) ((void)sizeof((cond) ? 1 : 0)) /* type-checked, never evaluated */
#endif

/* For the I/O shell only (server/, client/): a condition believed impossible. Sanitizer and
 * slow-assert builds abort; release builds evaluate to true so the caller takes the safe
 * branch (drop the connection, not the member). Use as: if (K_NEVER(x)) { ...; return; } */
#ifdef KETCH_SLOW_ASSERTS
#define K_NEVER(cond)                                                                              \
    ((cond) ? (k_assert_fail("never: " #cond, __FILE__, __LINE__, __func__), 1) : 0)
#else
#define K_NEVER(cond) (K_UNLIKELY(cond))
#endif

#define K_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
