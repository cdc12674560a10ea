/*
 * log.h - the one logging module of cloudh5.
 *
 * Messages carry syslog levels (LOG_ERR .. LOG_DEBUG).  The level is checked
 * before the message is formatted, so a disabled ch5_log() costs one compare.
 * The sink is stderr until ch5_log_to_syslog() switches it (the daemon does so
 * after it detaches).  Never pass credentials, signatures or secret keys to
 * these functions.
 *
 * Thread-safety: every function may be called from any thread; the level and
 * sink are plain ints read without a lock (a racy read only delays a change).
 */
#ifndef CH5_LOG_H
#define CH5_LOG_H

#include <syslog.h>

/* Set the most verbose level that is emitted (LOG_ERR .. LOG_DEBUG). */
void ch5_log_set_level(int level);

/* Return the current level. */
int ch5_log_level(void);

/* Send later messages to syslog(3) under IDENT (borrowed, must outlive the
 * process) instead of stderr. */
void ch5_log_to_syslog(const char *ident);

/* Emit one message at LEVEL.  A trailing newline is added. */
void ch5_log_msg(int level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#define ch5_log(level, ...)                                                    \
	do {                                                                   \
		if ((level) <= ch5_log_level())                                \
			ch5_log_msg((level), __VA_ARGS__);                     \
	} while (0)

#define ch5_err(...) ch5_log(LOG_ERR, __VA_ARGS__)
#define ch5_warn(...) ch5_log(LOG_WARNING, __VA_ARGS__)
#define ch5_info(...) ch5_log(LOG_INFO, __VA_ARGS__)
#define ch5_debug(...) ch5_log(LOG_DEBUG, __VA_ARGS__)

#include "banned.h"

#endif
