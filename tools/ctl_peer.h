/* ctl_peer: runs a ctl_script as a fake peer of the CP-UP protocol, either
 * a worker (a DEALER with a routing id, connected to a CP's ROUTER) or a CP
 * (a ROUTER bound for workers, ROUTER_MANDATORY and ROUTER_HANDOVER like
 * the real one). Every message sent or received is printed on stdout as one
 * JSON line:
 *
 *   {"dir":"in"|"out"|"drop","t_ms":MS,["peer":ID,]["resend":true,]
 *    ["auto":true,]["dropped":true,]"env":ENVELOPE}
 *
 * t_ms counts from the start of the run; "peer" is the routing id (cp
 * mode; as it is when it is printable ASCII, else 0x + hex, the form to=
 * takes too); "resend" marks a `resend`, "auto" a heartbeat sent by
 * auto-heartbeat; a "drop" line repeats a received message that a `drop`
 * consumed. A frame that does not decode gives {"dir":"in",...,"error":
 * KIND,"why":TEXT,"len":N} and is not offered to the script.
 *
 * Received messages wait in a backlog until an expect or drop takes them,
 * so the order between messages of different bodies does not matter.
 * Heartbeats never enter the backlog: an `expect heartbeat` waits for the
 * next one. A worker sends its auto heartbeats once a register_ack has
 * arrived; a CP sends them to every peer that sent a register. Their
 * interval: auto-heartbeat's MS, else --heartbeat-ms, else the heartbeat_ms
 * of the last register_ack received (worker) or sent (cp), else 1000.
 *
 * Built-in variables: $ID (own sender id), $EPOCH (own epoch), $PEER
 * (routing id of the last message received, cp mode). */
#ifndef CTL_PEER_H
#define CTL_PEER_H

#include <stdint.h>

#include "im_zmq.h"

typedef enum {
    CTL_PEER_WORKER,
    CTL_PEER_CP,
} ctl_peer_mode_t;

typedef struct {
    ctl_peer_mode_t mode;
    const char *endpoint;  /* worker: CP to connect to; cp: where to bind */
    const char *id;        /* worker: routing id and sender_id; cp: sender_id */
    uint64_t epoch;        /* 0: random, non-zero */
    uint32_t heartbeat_ms; /* non-zero: auto-heartbeat on from the start */
    const char *script;    /* path of the script */
    const im_zmq_curve_t *curve; /* worker: CURVE client settings, or NULL */
} ctl_peer_opts_t;

#define CTL_PEER_EXIT_OK 0
#define CTL_PEER_EXIT_SCRIPT 1 /* a line was bad or an expectation failed */
#define CTL_PEER_EXIT_SETUP 2  /* script unreadable, socket setup failed */

/* Runs the script to its end; returns one of the CTL_PEER_EXIT_* codes and
 * prints the reason for a failure on stderr ("FILE:LINE: ..."). */
int ctl_peer_run(const ctl_peer_opts_t *o);

#endif
