/*
 * gatehouse.h: the C ABI of the Gatehouse embeddable node (over wg/node.h). A program that links
 * libgatehouse becomes a node of a WireGuard mesh with no TUN device and no root: it listens and
 * dials TCP on its tunnel addresses through a userspace TCP/IP stack, gets plain file
 * descriptors, and asks who is on the other end of a connection.
 *
 *   gatehouse_options o;  gatehouse_options_init(&o);
 *   o.private_key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";  o.addresses = "10.7.0.2";
 *   gatehouse_node* n;  if (gatehouse_node_new(&o, &n) != GATEHOUSE_OK) ...;
 *   gatehouse_peer p;  gatehouse_peer_init(&p);
 *   p.public_key = "xTIB...=";  p.endpoint = "192.0.2.1:51820";  p.allowed_ips = "10.7.0.1/32";
 *   gatehouse_node_add_peer(n, &p);
 *   if (gatehouse_node_start(n) < 0) fprintf(stderr, "%s\n", gatehouse_errmsg(n));
 *   int l = gatehouse_listen(n, "tcp", 80);               // listener handle (pollable fd)
 *   char from[GATEHOUSE_ADDRSTRLEN];
 *   int fd = gatehouse_accept(n, l, -1, from, sizeof from);  // a connected stream socket
 *   gatehouse_identity id;  gatehouse_identity_init(&id);
 *   gatehouse_whois(n, from, &id);                       // id.public_key, id.name, ...
 *   ... read/write/close(fd) ...;  gatehouse_node_free(n);
 *
 * Versioning. GATEHOUSE_API_VERSION is the version of this header; gatehouse_version() returns
 * the library's. The library accepts any API version <= its own. Structs the caller fills or
 * receives (options, peer, identity) start with `struct_size` (set by the *_init functions):
 * fields are only ever appended, so an old caller's smaller struct keeps working, and a library
 * reading a newer caller's struct refuses it only if fields it does not know are non-zero.
 * `reserved` fields must be zero (the *_init functions zero them).
 *
 * Results. Every function that can fail returns an int: >= 0 is success (GATEHOUSE_OK, or a file
 * descriptor / handle / count), < 0 is a GATEHOUSE_E* code. The codes are negated Linux errno
 * values; the named ones below are stable. gatehouse_strerror(code) gives a short static text;
 * gatehouse_errmsg(node) gives the full message of the calling thread's last failed call on that
 * node (what failed and, for bad input, how to fix it). No function aborts on misuse.
 *
 * Threads. Every function is thread-safe, with two exceptions: gatehouse_node_add_peer and
 * gatehouse_node_start are configuration, called once by one thread before any other use;
 * gatehouse_node_free must be the last call on a node (no call may run concurrently with it).
 * Nodes run on a library thread (a libuv loop, one per process: see below); the log callback
 * runs on it and must not call back into the library. Blocking calls: gatehouse_node_start,
 * gatehouse_node_close, gatehouse_accept (up to timeout_ms), gatehouse_dial (up to timeout_ms).
 *
 * Ownership. The caller owns every file descriptor gatehouse_accept and gatehouse_dial return
 * and closes it with close(2). Listener handles belong to the node: release them with
 * gatehouse_listener_close (or let gatehouse_node_close do it); never close(2) them. Strings
 * passed in are copied before the call returns. Strings returned (gatehouse_strerror,
 * gatehouse_version_string) are static; gatehouse_errmsg's is valid until the same thread's next
 * failing call on the node, or gatehouse_node_free.
 *
 * Connections behave like kernel TCP sockets: shutdown(fd, SHUT_WR) sends FIN and keeps reading;
 * the peer's FIN reads as EOF; a reset by the peer reads as ECONNRESET. The TCP/IP stack (lwIP)
 * is process-global, so all nodes of a process share one thread, started by the first
 * gatehouse_node_start and joined by the gatehouse_node_free of the last node.
 */
#ifndef GATEHOUSE_H_
#define GATEHOUSE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define GATEHOUSE_API __attribute__((visibility("default")))
#else
#define GATEHOUSE_API
#endif

#define GATEHOUSE_API_VERSION 1

/* ---- result codes (negated Linux errno values) ---- */
#define GATEHOUSE_OK 0
#define GATEHOUSE_EPERM (-1)          /* key file readable by others */
#define GATEHOUSE_ENOENT (-2)         /* whois: no peer owns the address */
#define GATEHOUSE_EIO (-5)            /* I/O error (key file, sockets) */
#define GATEHOUSE_EBADF (-9)          /* node not started, closed, or unknown listener */
#define GATEHOUSE_ENOMEM (-12)        /* out of memory */
#define GATEHOUSE_EBUSY (-16)         /* the process's TCP/IP stack belongs to another node */
#define GATEHOUSE_EINVAL (-22)        /* bad argument: the message says which and why */
#define GATEHOUSE_EDEADLK (-35)       /* blocking call from the node's own thread */
#define GATEHOUSE_ENOTSUP (-95)       /* e.g. a network other than "tcp" */
#define GATEHOUSE_EAFNOSUPPORT (-97)  /* no node address of the destination's family */
#define GATEHOUSE_EADDRINUSE (-98)    /* listen: port already used */
#define GATEHOUSE_ECONNABORTED (-103) /* connection aborted locally */
#define GATEHOUSE_ECONNRESET (-104)   /* reset by the peer */
#define GATEHOUSE_ETIMEDOUT (-110)    /* accept/dial timed out */
#define GATEHOUSE_ECONNREFUSED (-111) /* dial: nothing listens there */
#define GATEHOUSE_EHOSTUNREACH (-113) /* dial: no peer's allowed IPs contain the address */

/* ---- sizes of the strings in gatehouse_identity (each includes the terminating NUL) ---- */
#define GATEHOUSE_KEY_STRLEN 45    /* base64 of a 32-byte key */
#define GATEHOUSE_ADDRSTRLEN 64    /* "[ipv6]:port" */
#define GATEHOUSE_PREFIX_STRLEN 48 /* "ipv6/128" */
#define GATEHOUSE_NAME_STRLEN 256
#define GATEHOUSE_LIST_STRLEN 1024 /* comma-separated lists (groups, tags) */
#define GATEHOUSE_MAX_ALLOWED_IPS 32

/* Log levels passed to gatehouse_options.log. */
#define GATEHOUSE_LOG_DEBUG 0
#define GATEHOUSE_LOG_INFO 1
#define GATEHOUSE_LOG_ERROR 2

typedef struct gatehouse_node gatehouse_node; /* opaque */

typedef struct gatehouse_options {
  uint32_t struct_size; /* sizeof(gatehouse_options); set by gatehouse_options_init */
  uint32_t api_version; /* GATEHOUSE_API_VERSION; set by gatehouse_options_init */
  /* The node key: base64 `private_key` (as `wg genkey` prints), or else `state_dir`/node.key
   * (created 0600 with a fresh key when missing; refused when group/other may read it). */
  const char* private_key;
  const char* state_dir;
  const char* addresses; /* tunnel addresses, comma-separated: "10.7.0.2,fd7::2" (required) */
  const char* hostname;  /* reported by whois for the node's own addresses; may be NULL */
  uint16_t listen_port;  /* WireGuard UDP port; 0 = any (see gatehouse_node_listen_port) */
  uint16_t mtu;          /* tunnel MTU; 0 = 1420 */
  uint32_t log_level;    /* least level passed to `log` */
  /* Optional; called on the node's thread. `msg` is valid during the call only. */
  void (*log)(void* log_ctx, int level, const char* msg);
  void* log_ctx;
  uint64_t reserved[8]; /* zero */
} gatehouse_options;

/* A static peer (until the control plane distributes them). */
typedef struct gatehouse_peer {
  uint32_t struct_size;          /* sizeof(gatehouse_peer); set by gatehouse_peer_init */
  uint32_t persistent_keepalive; /* seconds, 0 = off */
  const char* public_key;        /* base64 (required) */
  const char* endpoint;          /* "ip:port" or "[ip6]:port"; NULL or "" = the peer dials us */
  const char* allowed_ips;       /* comma-separated prefixes: "10.7.0.1/32,fd7::1/128" */
  const char* preshared_key;     /* base64, or NULL */
  const char* name;              /* reported by whois; may be NULL */
  uint64_t reserved[4];          /* zero */
} gatehouse_peer;

/* Flags of gatehouse_identity. */
#define GATEHOUSE_IDENTITY_SELF 1u      /* the address is this node's own */
#define GATEHOUSE_IDENTITY_TRUNCATED 2u /* a string or the allowed_ips array was cut short */

/* What the node knows about the owner of a tunnel address. Caller-owned; every string is
 * NUL-terminated. Strings longer than their array are cut (at a UTF-8 boundary) and more than
 * GATEHOUSE_MAX_ALLOWED_IPS prefixes are dropped; either sets GATEHOUSE_IDENTITY_TRUNCATED, and
 * allowed_ip_count is always the full count. Fields marked (control) stay empty until the
 * control plane provides them. */
typedef struct gatehouse_identity {
  uint32_t struct_size; /* sizeof(gatehouse_identity); set by gatehouse_identity_init */
  uint32_t flags;       /* GATEHOUSE_IDENTITY_* */
  char public_key[GATEHOUSE_KEY_STRLEN]; /* the peer node's WireGuard key, base64 */
  char name[GATEHOUSE_NAME_STRLEN];      /* peer name (static config) or hostname */
  char endpoint[GATEHOUSE_ADDRSTRLEN];   /* last known underlay endpoint, or "" */
  uint32_t allowed_ip_count;
  char allowed_ips[GATEHOUSE_MAX_ALLOWED_IPS][GATEHOUSE_PREFIX_STRLEN];
  char node_id[GATEHOUSE_NAME_STRLEN];           /* (control) */
  char user_login[GATEHOUSE_NAME_STRLEN];        /* (control) */
  char user_display_name[GATEHOUSE_NAME_STRLEN]; /* (control) */
  char groups[GATEHOUSE_LIST_STRLEN];            /* (control) comma-separated */
  char tags[GATEHOUSE_LIST_STRLEN];              /* (control) comma-separated */
  uint64_t reserved[8];
} gatehouse_identity;

/* ---- version and errors ---- */
GATEHOUSE_API int gatehouse_version(void);                /* the library's API version */
GATEHOUSE_API const char* gatehouse_version_string(void); /* e.g. "gatehouse 0.1.0 (api 1)" */
/* A short static description of a code ("connection refused"); never NULL. */
GATEHOUSE_API const char* gatehouse_strerror(int code);
/* The calling thread's last error message on `node`, or "" if none (also for a NULL node). */
GATEHOUSE_API const char* gatehouse_errmsg(const gatehouse_node* node);

/* ---- struct initialisers: zero everything, set struct_size (and api_version) ---- */
GATEHOUSE_API void gatehouse_options_init(gatehouse_options* options);
GATEHOUSE_API void gatehouse_peer_init(gatehouse_peer* peer);
GATEHOUSE_API void gatehouse_identity_init(gatehouse_identity* identity);

/* ---- lifecycle ---- */
/* Creates a node from `options` (copied). Checks the struct only; the key and addresses are
 * checked by start, which reports problems through gatehouse_errmsg. *out is NULL on failure. */
GATEHOUSE_API int gatehouse_node_new(const gatehouse_options* options, gatehouse_node** out);
/* Adds a static peer; before start only (GATEHOUSE_EINVAL after). */
GATEHOUSE_API int gatehouse_node_add_peer(gatehouse_node* node, const gatehouse_peer* peer);
/* Loads the key, binds the UDP port, starts the node's thread. Once per node. */
GATEHOUSE_API int gatehouse_node_start(gatehouse_node* node);
/* Resets every connection, closes every listener, stops the thread. Idempotent; afterwards
 * every call but gatehouse_errmsg and gatehouse_node_free returns GATEHOUSE_EBADF. Descriptors
 * already handed out stay open (they read ECONNRESET). */
GATEHOUSE_API int gatehouse_node_close(gatehouse_node* node);
/* Closes (if needed) and frees. NULL is a no-op. */
GATEHOUSE_API void gatehouse_node_free(gatehouse_node* node);

/* The UDP port the node listens on (after start), or a negative code. */
GATEHOUSE_API int gatehouse_node_listen_port(gatehouse_node* node);
/* The node's public key, base64, into out[GATEHOUSE_KEY_STRLEN]. After start. */
GATEHOUSE_API int gatehouse_node_public_key(gatehouse_node* node, char* out, size_t out_len);

/* ---- connections ---- */
/* Listens on `port` of every node address. `network` is "tcp" (others: GATEHOUSE_ENOTSUP).
 * Returns a listener handle >= 0: a file descriptor that polls readable while connections are
 * waiting (for poll/epoll); pass it to gatehouse_accept. Up to 128 connections wait; more are
 * reset. */
GATEHOUSE_API int gatehouse_listen(gatehouse_node* node, const char* network, int port);
/* Waits up to timeout_ms (-1: forever, 0: poll) for a connection on `listener`. Returns a
 * connected, blocking stream socket (close-on-exec) the caller owns. If `remote` is not NULL, the
 * peer's tunnel address is written there as "ip:port" or "[ip6]:port" (truncated to remote_len,
 * GATEHOUSE_ADDRSTRLEN always suffices). GATEHOUSE_ETIMEDOUT on timeout, GATEHOUSE_EBADF once the
 * listener or the node is closed (this wakes waiting calls). */
GATEHOUSE_API int gatehouse_accept(gatehouse_node* node, int listener, int timeout_ms, char* remote,
                                   size_t remote_len);
/* Stops listening, resets connections not yet accepted, wakes waiting gatehouse_accept calls. */
GATEHOUSE_API int gatehouse_listener_close(gatehouse_node* node, int listener);
/* Connects to "ip:port" / "[ip6]:port" through the mesh, waiting up to timeout_ms (<= 0: 10 s).
 * Returns a connected, blocking stream socket the caller owns. */
GATEHOUSE_API int gatehouse_dial(gatehouse_node* node, const char* address, int timeout_ms);

/* ---- identity ---- */
/* Fills `out` (initialised by gatehouse_identity_init) with what the node knows about the owner
 * of `remote_addr` ("ip", "ip:port" or "[ip6]:port", e.g. gatehouse_accept's `remote`).
 * GATEHOUSE_ENOENT when no peer owns it. A lookup in the node's current configuration, never
 * taken from the traffic. */
GATEHOUSE_API int gatehouse_whois(gatehouse_node* node, const char* remote_addr,
                                  gatehouse_identity* out);

#ifdef __cplusplus
}
#endif

#endif /* GATEHOUSE_H_ */
