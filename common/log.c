/*
 * log.c - level-filtered logging to stderr or syslog.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Process-wide logging state; these are the only mutable globals of the
 * project, and a log sink is process-wide by nature.  Read without a lock. */
static volatile int log_level = LOG_WARNING;
static volatile int log_syslog;

void ch5_log_set_level(int level)
{
	log_level = level;
}

int ch5_log_level(void)
{
	return log_level;
}

void ch5_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_syslog = 1;
}

void ch5_log_msg(int level, const char *fmt, ...)
{
	static const char *const names[] = { "emerg", "alert", "crit",
					     "error", "warning", "notice",
					     "info", "debug" };
	char msg[2048];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (log_syslog) {
		syslog(level, "%s", msg);
		return;
	}
	fprintf(stderr, "cloudh5: %s: %s\n",
		names[(level >= 0 && level <= LOG_DEBUG) ? level : LOG_ERR],
		msg);
}
