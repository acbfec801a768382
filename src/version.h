/* version.h - the release version. */
#ifndef PORTICO_VERSION_H
#define PORTICO_VERSION_H
#define PORTICO_VERSION "0.1.0"
#endif
