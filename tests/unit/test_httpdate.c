/* test_httpdate.c: calm_parse_retry_after in every form, against a fixed
 * "now" of 2024-11-11 14:59:00 UTC (1731337140). */
#include <stdio.h>

#include "calm.h"
#include "check.h"

#define NOW ((time_t)1731337140)

/* Expects `want` seconds, or failure when want < 0. */
static void row(const char *value, double want, const char *what)
{
    double got = -99;
    int rc = calm_parse_retry_after(value, strlen(value), NOW, &got);
    char label[160];

    size_t i;

    snprintf(label, sizeof label, "%s: \"%s\"", what, value);
    for (i = 0; label[i]; i++)
        if ((unsigned char)label[i] < 0x20)
            label[i] = '?';     /* one output line per check */
    if (want < 0)
        CHECK(rc == -1, label);
    else
        CHECK(rc == 0 && got == want, label);
}

int main(void)
{
    check_suite = "unit/httpdate";

    row("5", 5, "delta seconds");
    row("0", 0, "zero");
    row("120", 120, "delta seconds");
    row("  30 \r\n", 30, "white space around");
    row("2147483647", 2147483647.0, "largest delta");
    row("2147483648", -1, "delta too large");
    row("99999999999999999999999999999999", -1, "huge number");
    row("", -1, "empty");
    row("   ", -1, "blank");
    row("abc", -1, "garbage");
    row("-5", -1, "negative");
    row("+5", -1, "signed");
    row("1.5", -1, "fraction");
    row("5s", -1, "unit suffix");
    row("0x10", -1, "hex");

    row("Mon, 11 Nov 2024 14:59:33 GMT", 33, "IMF-fixdate");
    row("Mon, 11 Nov 2024 15:59:00 GMT", 3600, "IMF-fixdate an hour ahead");
    row("Sun, 06 Nov 1994 08:49:37 GMT", 0, "IMF-fixdate in the past");
    row("Mon, 11 Nov 2024 14:58:59 GMT", 0, "IMF-fixdate one second ago");
    row("Mon, 11 Nov 2024 14:59:33 UTC", 33, "IMF-fixdate with UTC");
    row("Mon, 11 Nov 2024 14:59:33", -1, "IMF-fixdate without zone");
    row("Mon, 11 Nov 2024 14:59:33 CET", -1, "IMF-fixdate with another zone");
    row("Mon, 31 Feb 2024 14:59:33 GMT", -1, "impossible date");
    row("Mon, 29 Feb 2023 14:59:33 GMT", -1, "no leap day in 2023");
    row("Thu, 29 Feb 2024 00:00:00 GMT", 0, "leap day 2024 (past)");
    row("Mon, 11 Nov 2024 24:00:00 GMT", -1, "hour 24");
    row("Mon, 11 Xyz 2024 14:59:33 GMT", -1, "bad month");
    row("Mon, 11 Nov 2024 14:59:33 GMT junk", -1, "trailing junk");
    row("Mon, 11 Nov 99999 14:59:33 GMT", -1, "five-digit year");
    row("Funday, 11 Nov 2024 14:59:33 GMT", -1, "bad day name");

    row("Monday, 11-Nov-24 15:00:00 GMT", 60, "RFC 850");
    row("Sunday, 06-Nov-94 08:49:37 GMT", 0, "RFC 850 in the past (1994)");
    row("Mon, 11-Nov-24 15:00:00 GMT", -1, "RFC 850 needs the long day name");

    row("Mon Nov 11 15:00:00 2024", 60, "asctime");
    row("Sun Nov  6 08:49:37 1994", 0, "asctime padded day, past");
    row("Mon Nov 11 15:00:00", -1, "asctime without year");

    row("2024-11-11 14:59:33 +0000 UTC", 33, "Service Manager Go form");
    row("2024-11-11 15:59:33 +0100 CET", 33, "Go form, CET");
    row("2024-11-11 09:59:33 -0500 EST", 33, "Go form, EST");
    row("2024-11-11 20:29:33 +0530 +0530", 33, "Go form, unnamed zone");
    row("2024-11-11 14:59:33.123456789 +0000 UTC", 33, "Go form with nanoseconds");
    row("2024-11-11 14:59:33 +0000 UTC m=+12.345", 33, "Go form with monotonic reading");
    row("2024-11-11 14:59:33 +0000", 33, "Go form without abbreviation");
    row("2023-11-11 14:59:33 +0000 UTC", 0, "Go form in the past");
    row("2024-11-11 14:59:33 UTC", -1, "Go form without offset");
    row("2024-13-11 14:59:33 +0000 UTC", -1, "month 13");
    row("2024-11-11 14:59:33 +2400 UTC", -1, "offset out of range");
    row("2024-11-11T14:59:33Z", 33, "RFC 3339");
    row("2024-11-11T16:59:33+02:00", 33, "RFC 3339 with offset");
    row("2024-11-11", -1, "date alone");

    {
        double s = -1;
        CHECK(calm_parse_retry_after("12", 1, NOW, &s) == 0 && s == 1, "length is respected");
        CHECK(calm_parse_retry_after(NULL, 0, NOW, &s) == -1, "NULL value");
    }

    return CHECK_DONE();
}
