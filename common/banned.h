/*
 * banned.h - libc functions cloudh5 does not use.
 *
 * Included last by every .c file (through log.h).  Each banned name becomes a
 * compile error that names the safer replacement.
 */
#ifndef CH5_BANNED_H
#define CH5_BANNED_H

#define BANNED(func) sorry_##func##_is_banned_use_snprintf_or_strtol

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef gets
#define gets(x) BANNED(gets)

#endif
