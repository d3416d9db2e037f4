import { createConnection, createServer, type Server, type Socket } from 'node:net';

/** A TCP proxy in front of a redis-server that can lose one reply, as a flaky network does. */
export interface ReplyDropProxy {
  readonly port: number;
  /**
   * Arms the proxy: the next bytes the server sends are not forwarded and the client's connection is
   * cut instead — the server has executed the command, the client never hears of it. ioredis then
   * reconnects and, by default (`autoResendUnfulfilledCommands`), sends the command again.
   */
  dropNextReply(): void;
  /** How many replies were dropped so far. */
  readonly dropped: number;
  close(): Promise<void>;
}

/** Starts a {@link ReplyDropProxy} on a free port of 127.0.0.1, forwarding to `targetPort`. */
export async function startReplyDropProxy(targetPort: number): Promise<ReplyDropProxy> {
  let armed = false;
  let dropped = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    const upstream = createConnection(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('data', (chunk) => upstream.write(chunk));
    upstream.on('data', (chunk) => {
      if (armed) {
        armed = false;
        dropped++;
        end();
        return;
      }
      client.write(chunk);
    });
    client.on('close', end).on('error', end);
    upstream.on('close', end).on('error', end);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    port: address.port,
    dropNextReply() {
      armed = true;
    },
    get dropped() {
      return dropped;
    },
    close() {
      for (const socket of sockets) socket.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
