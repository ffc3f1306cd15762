/**
 * @file common.h
 * @brief Export, calling-convention and attribute macros shared by every libscore header.
 *
 * This header includes only `<stddef.h>` and `<stdint.h>`.
 */
#ifndef LIBSCORE_COMMON_H
#define LIBSCORE_COMMON_H

#include <stddef.h>
#include <stdint.h>

/**
 * @def SCORE_API
 * @brief Marks a function as part of the exported libscore ABI.
 *
 * Expands to the default-visibility attribute on ELF / Mach-O, to `__declspec(dllexport)` when
 * building the library on Windows and `__declspec(dllimport)` when using it, and to nothing when
 * `SCORE_STATIC` is defined. Define `SCORE_API` yourself before including a libscore header to
 * override it (e.g. `-DSCORE_API=` for a cffi `cdef` pass).
 */
#ifndef SCORE_API
#  if defined(SCORE_STATIC)
#    define SCORE_API
#  elif defined(_WIN32)
#    if defined(SCORE_BUILDING_LIBRARY)
#      define SCORE_API __declspec(dllexport)
#    else
#      define SCORE_API __declspec(dllimport)
#    endif
#  elif defined(__GNUC__) && __GNUC__ >= 4
#    define SCORE_API __attribute__((visibility("default")))
#  else
#    define SCORE_API
#  endif
#endif

/**
 * @def SCORE_WARN_UNUSED
 * @brief Asks the compiler to warn when a returned status is ignored.
 */
#ifndef SCORE_WARN_UNUSED
#  if defined(__GNUC__) && __GNUC__ >= 4
#    define SCORE_WARN_UNUSED __attribute__((warn_unused_result))
#  else
#    define SCORE_WARN_UNUSED
#  endif
#endif

/**
 * @def SCORE_DEPRECATED
 * @brief Marks a declaration as deprecated with a message; define
 * `SCORE_DISABLE_DEPRECATE_WARNINGS` to silence it.
 */
#ifndef SCORE_DEPRECATED
#  if defined(SCORE_DISABLE_DEPRECATE_WARNINGS)
#    define SCORE_DEPRECATED(msg)
#  elif defined(__GNUC__) && (__GNUC__ > 4 || (__GNUC__ == 4 && __GNUC_MINOR__ >= 5))
#    define SCORE_DEPRECATED(msg) __attribute__((deprecated(msg)))
#  elif defined(_MSC_VER)
#    define SCORE_DEPRECATED(msg) __declspec(deprecated(msg))
#  else
#    define SCORE_DEPRECATED(msg)
#  endif
#endif

/**
 * @def SCORE_CALLBACK
 * @brief Declares a callback pointer type `name` with the library's calling convention
 * (`__cdecl` on MSVC, the platform default elsewhere).
 */
#if defined(_MSC_VER)
#  define SCORE_CALLBACK(name) (__cdecl *name)
#else
#  define SCORE_CALLBACK(name) (*name)
#endif

/** @def SCORE_BEGIN_DECLS
 *  @brief Opens an `extern "C"` block in C++ (empty in C). */
/** @def SCORE_END_DECLS
 *  @brief Closes the block opened by ::SCORE_BEGIN_DECLS. */
#ifdef __cplusplus
#  define SCORE_BEGIN_DECLS extern "C" {
#  define SCORE_END_DECLS }
#else
#  define SCORE_BEGIN_DECLS
#  define SCORE_END_DECLS
#endif

SCORE_BEGIN_DECLS

/**
 * @brief Releases memory that libscore allocated for the caller (strings, serialised blobs).
 *
 * Never pass such memory to `free()`: libscore and the caller may use different allocators.
 *
 * @param[in] ptr memory returned by a libscore function documented as "release with
 *                score_free()"; NULL is a no-op.
 *
 * Ownership: takes ownership of @p ptr.
 * Thread-safety: safe.
 * @since 0.1
 */
SCORE_API void score_free(void *ptr);

SCORE_END_DECLS

#endif /* LIBSCORE_COMMON_H */
