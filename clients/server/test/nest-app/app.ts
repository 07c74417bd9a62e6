// A NestJS app whose gateway is written as for Socket.IO (a guard, pipes,
// an interceptor, WsExceptions, rooms, the server) and runs behind sockgate
// through SockgateAdapter. nest.test.mjs compiles it with tsc and starts it.
import "reflect-metadata";
import {
  type ArgumentMetadata,
  type CallHandler,
  type CanActivate,
  Controller,
  type ExecutionContext,
  HttpCode,
  Injectable,
  Module,
  Param,
  Post,
  type NestInterceptor,
  type PipeTransform,
  UseGuards,
  UseInterceptors,
} from "@nestjs/common";
import { NestFactory } from "@nestjs/core";
import {
  Ack,
  ConnectedSocket,
  MessageBody,
  type OnGatewayConnection,
  type OnGatewayDisconnect,
  type OnGatewayInit,
  SubscribeMessage,
  WebSocketGateway,
  WebSocketServer,
  WsException,
} from "@nestjs/websockets";
import { interval, map, NEVER, type Observable, of } from "rxjs";
import { SockgateAdapter, type SockgateAdapterOptions, type SockgateClient, type SockgateServer } from "@sockgate/server/nest";

/** What ran in the app, for the test to check. */
export const stats = {
  /** Handler runs by event name: a refused call must not appear. */
  handled: {} as Record<string, number>,
  connections: 0,
  disconnects: 0,
  inits: 0,
};

function ran(event: string): void {
  stats.handled[event] = (stats.handled[event] ?? 0) + 1;
}

/** Refuses mallory, reading the identity where Socket.IO gateway guards look for it. */
@Injectable()
class NotMallory implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const client = context.switchToWs().getClient<SockgateClient>();
    const fromAuth = client.handshake.auth.userId;
    const fromData = client.data.user.userId;
    return fromAuth !== "mallory" && fromData !== "mallory";
  }
}

/** A ValidationPipe-like check: `{ room, text }` with 1 to 200 characters of text. */
class ChatMessagePipe implements PipeTransform {
  transform(value: unknown, _metadata: ArgumentMetadata): { room: string; text: string } {
    const v = value as { room?: unknown; text?: unknown } | null;
    if (!v || typeof v.room !== "string" || typeof v.text !== "string" || v.text.length === 0 || v.text.length > 200) {
      throw new WsException({ code: "INVALID_PAYLOAD", message: "room and 1 to 200 characters of text are required" });
    }
    return { room: v.room, text: v.text.trim() };
  }
}

/** Adds `via` to every ack, as an interceptor on Socket.IO would. */
@Injectable()
class Stamp implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((value) => ({ ...(value as object), via: "interceptor" })));
  }
}

@UseGuards(NotMallory)
@WebSocketGateway()
export class ChatGateway implements OnGatewayInit, OnGatewayConnection, OnGatewayDisconnect {
  @WebSocketServer() server!: SockgateServer;

  afterInit(_server: SockgateServer): void {
    stats.inits++;
  }

  handleConnection(_client: SockgateClient): void {
    stats.connections++;
  }

  handleDisconnect(_client: SockgateClient): void {
    stats.disconnects++;
  }

  @SubscribeMessage("whoami")
  whoami(@ConnectedSocket() client: SockgateClient) {
    ran("whoami");
    return {
      id: client.id,
      user: client.data.user,
      auth: client.handshake.auth,
      handshakeUser: client.handshake.user,
      rooms: [...client.rooms],
      namespace: client.nsp.name,
    };
  }

  @SubscribeMessage("chat:join")
  join(@MessageBody() room: string, @ConnectedSocket() client: SockgateClient) {
    ran("chat:join");
    if (room === "chat:full") throw new WsException({ code: "ROOM_FULL", message: "that room is full" });
    client.join(room);
    client.emit("chat:joined", { room });
    return { joined: room, rooms: [...client.rooms] };
  }

  @SubscribeMessage("chat:leave")
  leave(@MessageBody() room: string, @ConnectedSocket() client: SockgateClient) {
    ran("chat:leave");
    client.leave(room);
    return { left: room };
  }

  @UseInterceptors(Stamp)
  @SubscribeMessage("chat:send")
  send(@MessageBody(new ChatMessagePipe()) body: { room: string; text: string }, @ConnectedSocket() client: SockgateClient) {
    ran("chat:send");
    this.server.to(body.room).emit("chat:message", { from: client.data.user.userId, text: body.text });
    return { sent: true };
  }

  // Socket.IO's "everyone in the room but me".
  @SubscribeMessage("chat:typing")
  typing(@MessageBody() room: string, @ConnectedSocket() client: SockgateClient) {
    ran("chat:typing");
    client.to(room).emit("chat:typing", { from: client.data.user.userId });
    client.broadcast.to(room).emit("chat:typing", { from: client.data.user.userId, again: true });
    return { ok: true };
  }

  @SubscribeMessage("fail:plain")
  failPlain() {
    ran("fail:plain");
    throw new WsException("a plain message");
  }

  @SubscribeMessage("fail:lowercase")
  failLowercase() {
    ran("fail:lowercase");
    throw new WsException({ code: "not-a-code", message: "code is not an app code" });
  }

  @SubscribeMessage("fail:crash")
  failCrash() {
    ran("fail:crash");
    throw new Error("boom");
  }

  @SubscribeMessage("args")
  args(@MessageBody() data: unknown) {
    ran("args");
    return { data, binary: Buffer.isBuffer(data) ? (data as Buffer).toString("hex") : null };
  }

  /** A WsResponse (`{ event, data }`) is emitted; the other value is the ack. */
  @SubscribeMessage("stream")
  stream() {
    ran("stream");
    return of({ event: "tick", data: 1 }, { value: "acked" });
  }

  /** `@Ack()`: the handler calls the ack itself, later. */
  @SubscribeMessage("manual")
  manual(@MessageBody() data: unknown, @Ack() ack: (value: unknown) => void) {
    ran("manual");
    setTimeout(() => ack({ manual: data }), 20);
  }

  @SubscribeMessage("async")
  async asyncHandler(@MessageBody() n: number) {
    ran("async");
    await new Promise((resolve) => setTimeout(resolve, 10));
    return { doubled: n * 2 };
  }

  /** Never completes: answered at the adapter's timeout. */
  @SubscribeMessage("hang")
  hang() {
    ran("hang");
    return NEVER;
  }

  /** Keeps emitting: the first value is the ack, as on Socket.IO. */
  @SubscribeMessage("ticker")
  ticker() {
    ran("ticker");
    return interval(5).pipe(map((n) => ({ n })));
  }

  @SubscribeMessage("bye")
  bye(@ConnectedSocket() client: SockgateClient) {
    ran("bye");
    client.disconnect();
    return "bye";
  }
}

/** An HTTP route that publishes outside any call: through the adapter's `publish` option. */
@Controller()
class AnnounceController {
  constructor(private readonly chat: ChatGateway) {}

  @Post("announce/:room")
  @HttpCode(204)
  announce(@Param("room") room: string): void {
    this.chat.server.to(room).emit("announcement", { room });
  }
}

@Module({ providers: [ChatGateway, NotMallory], controllers: [AnnounceController] })
class AppModule {}

/** Starts the app on 127.0.0.1 (port 0) with the adapter; resolves its URL and a way to close it. */
export async function startApp(options: SockgateAdapterOptions): Promise<{ url: string; close(): Promise<void> }> {
  const app = await NestFactory.create(AppModule, { logger: ["error", "warn"] });
  // The three lines NEST.md shows.
  app.useWebSocketAdapter(new SockgateAdapter(app, options));
  await app.listen(0, "127.0.0.1");
  const url = (await app.getUrl()).replace("[::1]", "127.0.0.1");
  return { url, close: () => app.close() };
}
