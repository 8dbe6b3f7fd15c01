// A container stand-in in its own process, so that a test can SIGKILL it
// mid-transfer like a crashed or stopped container. Prints {"port":N} when
// listening, then one marker line per event the test may wait for.
import { startUpstream } from './upstream.js';

const chunk = Buffer.alloc(64 * 1024, 1);
const say = (line: string): void => void process.stdout.write(`${line}\n`);

const upstream = await startUpstream('container', (req, res) => {
  if (req.url === '/upload') {
    // Reads the upload and never answers: killed while the body flows.
    req.once('data', () => say('upload-started'));
    req.resume();
    return true;
  }
  if (req.url === '/download') {
    // An endless download: killed while the body flows.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const pump = (): void => {
      while (res.write(chunk));
      res.once('drain', pump);
    };
    pump();
    say('download-started');
    return true;
  }
  return false;
});
upstream.wss.on('connection', (ws) => ws.once('message', () => say('ws-message')));
say(JSON.stringify({ port: upstream.port }));
