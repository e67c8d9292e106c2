#!/bin/sh
# bare-cr.sh SEED WANT RCPT: write a message whose text holds bare CRs,
# "<CR>.<CR>" followed by SMTP commands (what an MTA that ended lines at
# a bare CR would take for the end of DATA and a second message), a "."
# line ended by bare LFs and NUL bytes, to SEED; and to WANT the message
# an MTA must store for it once pullmail has sent it over SMTP or LMTP:
# every bare CR and bare LF a line end, the NUL bytes gone, all of it one
# message (with LF line ends, as Postfix and Dovecot store it).  Serve it
# over POP3: Dovecot's IMAP turns NUL into 0x80 before pullmail sees it.
seed=$1 want=$2 rcpt=$3
printf 'From: <carol@example.org>\r\nTo: %s\r\nSubject: bare CR and NUL\r\n' \
    "$rcpt" >"$seed"
printf 'Date: Mon, 30 Nov 2026 00:00:00 +0000\r\nMessage-ID: <bare-cr@example.org>\r\n\r\n' >>"$seed"
printf 'a bare\rCR\r\n<CR>.<CR> comes next:\r.\rMAIL FROM:<evil@example.org>\r\n' >>"$seed"
printf 'RCPT TO:<%s>\r\nDATA\r\nSubject: smuggled\r\n\r\nsmuggled\r\n.\r\n' \
    "$rcpt" >>"$seed"
printf 'n\000u\000l\r\n\000.\r\na bare LF dot:\n.\nlast\rline\r\n' >>"$seed"

printf 'From: <carol@example.org>\nTo: %s\nSubject: bare CR and NUL\n' \
    "$rcpt" >"$want"
printf 'Date: Mon, 30 Nov 2026 00:00:00 +0000\nMessage-ID: <bare-cr@example.org>\n\n' >>"$want"
printf 'a bare\nCR\n<CR>.<CR> comes next:\n.\nMAIL FROM:<evil@example.org>\n' >>"$want"
printf 'RCPT TO:<%s>\nDATA\nSubject: smuggled\n\nsmuggled\n.\n' "$rcpt" >>"$want"
printf 'nul\n.\na bare LF dot:\n.\nlast\nline\n' >>"$want"
