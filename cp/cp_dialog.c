#include "cp_dialog.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <sofia-sip/sip_header.h>
#include <sofia-sip/url.h>

void cp_dialog_tag(uint64_t sid, int dir, uint32_t nonce,
                   char tag[CP_DIALOG_TAG_LEN + 1])
{
    snprintf(tag, CP_DIALOG_TAG_LEN + 1, "%016" PRIx64 "%c%08" PRIx32, sid,
             dir ? '1' : '0', nonce);
}

static int s_hex(const char *p, int n, uint64_t *out)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++) {
        int c = p[i], d;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (c >= 'a' && c <= 'f')
            d = c - 'a' + 10;
        else
            return -1;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 0;
}

int cp_dialog_tag_parse(const char *tag, uint64_t *sid, int *dir,
                        uint32_t *nonce)
{
    uint64_t id, n;
    if (!tag || strlen(tag) != CP_DIALOG_TAG_LEN ||
        (tag[16] != '0' && tag[16] != '1') || s_hex(tag, 16, &id) < 0 ||
        s_hex(tag + 17, 8, &n) < 0)
        return -1;
    *sid = id;
    *dir = tag[16] - '0';
    *nonce = (uint32_t)n;
    return 0;
}

char *cp_dialog_name_addr(su_home_t *home, sip_addr_t const *a)
{
    if (!a)
        return NULL;
    char *uri = url_as_string(home, a->a_url);
    if (!uri)
        return NULL;
    return a->a_display && *a->a_display
               ? su_sprintf(home, "%s <%s>", a->a_display, uri)
               : su_sprintf(home, "<%s>", uri);
}

char *cp_dialog_route_set(su_home_t *home, sip_record_route_t const *rr,
                          bool reverse)
{
    char *set = NULL;
    for (; rr; rr = rr->r_next) {
        char *one = sip_header_as_string(home, (sip_header_t const *)rr);
        set = !one ? NULL
              : !set ? one
              : reverse ? su_sprintf(home, "%s, %s", one, set)
                        : su_sprintf(home, "%s, %s", set, one);
        if (!set)
            return NULL;
    }
    return set;
}

int cp_dialog_route(su_home_t *home, const char *route, const char *target,
                    url_t const **request_uri, sip_route_t **routes)
{
    sip_route_t *r = NULL;
    url_t *t = target ? url_make(home, target) : NULL;
    if (route && !(r = sip_route_make(home, route)))
        return -1;
    if (r && !url_has_param(r->r_url, "lr")) {
        sip_route_t **last = &r->r_next;
        while (*last)
            last = &(*last)->r_next;
        if (t && !(*last = sip_route_format(home, "<%s>", target)))
            return -1;
        *request_uri = r->r_url;
        *routes = r->r_next;
        return 0;
    }
    if (!t)
        return -1;
    *request_uri = t;
    *routes = r;
    return 0;
}
