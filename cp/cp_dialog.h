/* cp_dialog: what the CP keeps of a SIP dialog (RFC 3261 12) per leg, taken
 * from the messages that make it, and the tags that name our side of it.
 * Functions of SIP values only, without NTA, so that they can be tested
 * and fuzzed; cp_sip stores the results in the session and sends the
 * dialog's requests.
 *
 * Our tag on a leg is the session id (16 hex digits), the direction ('0'
 * client, '1' controlling) and a per-leg nonce (8 hex digits): a request
 * in a dialog names its session in its To tag, and the nonce keeps a tag
 * from being derived from another. Strings returned are allocated from
 * `home`; NULL means out of memory or nothing to return (see each). */
#ifndef CP_DIALOG_H
#define CP_DIALOG_H

#include <stdbool.h>
#include <stdint.h>

#include <sofia-sip/sip.h>
#include <sofia-sip/su_alloc.h>

#define CP_DIALOG_TAG_LEN 25

void cp_dialog_tag(uint64_t sid, int dir, uint32_t nonce,
                   char tag[CP_DIALOG_TAG_LEN + 1]);
/* 0 and the parts if `tag` has the form cp_dialog_tag makes, else -1. */
int cp_dialog_tag_parse(const char *tag, uint64_t *sid, int *dir,
                        uint32_t *nonce);

/* `display <uri>` of a From or To, without its parameters (the tag). */
char *cp_dialog_name_addr(su_home_t *home, sip_addr_t const *a);

/* The route set as a Route header value: the Record-Route entries in order
 * (UAS, RFC 3261 12.1.1) or reversed (UAC, 12.1.2). NULL if there are
 * none, or out of memory (`rr` given). */
char *cp_dialog_route_set(su_home_t *home, sip_record_route_t const *rr,
                          bool reverse);

/* Where a request in the dialog goes (RFC 3261 12.2.1.1): with no route
 * set or a loose router first, the request URI is the remote target and
 * Route the route set; a strict router (no ;lr) first takes the request
 * URI itself and the target goes last in Route. `route` may be NULL.
 * 0 with *request_uri and *routes (NULL: no Route), or -1 if the route
 * set does not parse or there is no target to send to. */
int cp_dialog_route(su_home_t *home, const char *route, const char *target,
                    url_t const **request_uri, sip_route_t **routes);

#endif
