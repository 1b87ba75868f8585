<?php
// The PHP client of the fault harness (scripts/faults/php-client.ts starts one per slot): the
// classic fsockopen trigger, except that it reads the status line, so the harness knows which
// webhook-ids were acknowledged. Never needs running by hand:
//   php scripts/faults/fsockopen-ack.php HOST PORT BASE64_REQUEST PREFIX START STRIDE
// BASE64_REQUEST is the complete request from rawtrigger's buildRequest(), with "{ID}" where the
// webhook-id goes. Fires ids PREFIX-START, PREFIX-(START+STRIDE), … one after the other until its
// stdin is closed, and prints per trigger:
//   "> ID" before it connects, then "= ID STATUS BODY_ID ERROR_CODE" ("-" for none) or "! ID ERRNO".

if ($argc !== 7) {
    fwrite(STDERR, "usage: php fsockopen-ack.php HOST PORT BASE64_REQUEST PREFIX START STRIDE\n");
    exit(2);
}
$host = $argv[1];
$port = (int) $argv[2];
$template = base64_decode($argv[3], true);
$prefix = $argv[4];
$n = (int) $argv[5];
$stride = (int) $argv[6];
if ($template === false || strpos($template, '{ID}') === false) {
    fwrite(STDERR, "fsockopen-ack.php: the request is not base64 with an {ID} in it\n");
    exit(2);
}

const CONNECT_TIMEOUT_S = 3; // the Node clients' connect timeout
const ANSWER_TIMEOUT_S = 8;  // and their wait for the answer
const ERROR_PAUSE_US = 20000; // after a failure, as the Node clients: no tight loop at a dead port

stream_set_blocking(STDIN, false);
while (true) {
    fread(STDIN, 1024);
    if (feof(STDIN)) {
        break; // the harness closed our stdin: stop
    }
    $id = $prefix . '-' . $n;
    $n += $stride;
    echo "> $id\n";
    $fp = @fsockopen($host, $port, $errno, $errstr, CONNECT_TIMEOUT_S);
    if ($fp === false) {
        echo "! $id E$errno\n";
        usleep(ERROR_PAUSE_US);
        continue;
    }
    stream_set_timeout($fp, ANSWER_TIMEOUT_S);
    $request = str_replace('{ID}', $id, $template);
    $written = @fwrite($fp, $request);
    $answer = $written === strlen($request) ? stream_get_contents($fp) : false;
    $meta = stream_get_meta_data($fp);
    fclose($fp);
    if ($answer === false || $answer === '') {
        echo "! $id " . ($written !== strlen($request) ? 'EWRITE' : ($meta['timed_out'] ? 'ETIMEDOUT' : 'ECLOSED')) . "\n";
        usleep(ERROR_PAUSE_US);
        continue;
    }
    if (!preg_match('#^HTTP/1\.[01] (\d{3})#', $answer, $m)) {
        echo "! $id EPROTO\n";
        continue;
    }
    $at = strpos($answer, "\r\n\r\n");
    $json = $at === false ? null : json_decode(substr($answer, $at + 4), true);
    $bodyId = is_array($json) && isset($json['id']) && is_string($json['id']) ? $json['id'] : '-';
    $code = is_array($json) && isset($json['error']['code']) && is_string($json['error']['code']) ? $json['error']['code'] : '-';
    $dup = is_array($json) && ($json['duplicate'] ?? false) === true ? ' duplicate' : '';
    echo "= $id {$m[1]} $bodyId $code$dup\n";
}
