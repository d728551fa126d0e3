"""The settings table's words in Chinese: for each setting, how its default
is stated and what it means, as docs/zh-CN/configuration.md shows them
(`python3 -m flaskbox docs-table zh-CN`; tests/test_docs.py keeps the page,
this and the table in step)."""

from ..layout import Runtime

TEXTS: dict[str, tuple[str, str]] = {
    'APP_MODE': (
        '`production`',
        '`production` 或 `debug`；命令行的 `-d` 优先。'),
    'PORT': (
        '生产模式 `80`，调试模式 `5000`',
        'nginx（或开发服务器）监听的端口。'),
    'RUNTIME_DIR': (
        f'`{Runtime.DEFAULT}`',
        '镜像写入运行时文件的位置，必须可写。'),
    'UWSGI_INI': (
        '存在时为 `/app/uwsgi.ini`（自动计算）',
        '额外的 uWSGI ini，在镜像自带的 `app.ini` 之后合并（其中的值'
         '优先）；与 tiangolo 的镜像一样，其中的 `module` 和 `cal'
         'lable` 指定应用。'),
    'APP_MODULE': (
        '`wsgi`、`app` 或 `main`，视 `/app` 中有哪个文件而定（自动计算）',
        '你的 WSGI 应用，相对于 `/app`，采用 Flask 的写法：`modu'
         'le`（由 Flask 找到其中的 `app` 或 `create_app`）、'
         '`module:name`、`module:factory(args)`。也会从'
         ' `FLASK_APP` 读取（[your-app.md](your-app.m'
         'd#如何找到应用)）。'),
    'MAX_BODY_SIZE': (
        '`10m`',
        '请求体上限，或表单中单个文件的上限（表单自身的字段可在其外另占最多 64 KiB）（nginx 的大小写法：'
         '`512k`、`10m`、`1g`；`0` 表示不限）。超过返回 413。未设置时，应用自己的 Flask '
         '`MAX_CONTENT_LENGTH` 若更大，则由它作为 nginx 的上限（[your-app.md](your-app.md#上传及其上限)）。'),
    'MAX_LINE_SIZE': (
        '`16k`',
        'nginx 接受的最长请求行（URL 连同查询参数）和最长的单个请求头行（cookie、令牌）；'
        '更长的得到 414 或 400，日志行中带有 `limit=MAX_LINE_SIZE`。应用的响应头可以把它回显'
        '两遍（例如重定向到 `/login/?next=<该 URL>`）'
        '（[configuration.md](configuration.md#长-url-和大请求头)）。'),
    'REQUEST_TIMEOUT': (
        '`30`',
        '客户端最多等待多少秒才能开始收到响应（包括排队时间），以及之后流式响应每两段之间'
        '最多等待多少秒：超过后，仍在排队的请求得到 503，仍在运行的处理函数得到 504（它的'
        ' worker 会在其他请求结束后被替换），中途停下不发的流被截断（客户端看得出来）。一直在'
        '发送的响应永远不会因它被截断。'),
    'IMPORT_TIMEOUT': (
        '`120`',
        '应用导入（模块和工厂函数）最多可用的秒数，启动和重载时都算。超过后，日志写出每个线程'
        '的调用栈和导入卡住的那一行，启动结束（退出码 124；重载则继续运行原来的代码）；调试模式'
        '只显示调用栈，继续等待。`0`：不限（[your-app.md](your-app.md#导入一直不结束)）。'),
    'RELOAD_GRACE': (
        '`300`',
        '重载（SIGHUP）时，正在进行的请求、下载和流有多少秒在旧代码上完成，与此同时新请求'
        '已经交给新代码；超过即被截断（客户端和访问日志都看得出来）。到期前一秒仍未结束的'
        '事件流会被正常结束并计数（[production.md](production.md#原地重载)）。'),
    'STOP_TIMEOUT': (
        '`10`',
        '一次停止最多用多少秒：设成与编排器在 SIGKILL 之前给的宽限期相同的数字（`docker stop -t` 或 '
        '`--stop-timeout`，Compose 和 Swarm 的 `stop_grace_period`，Kubernetes 的 '
        '`terminationGracePeriodSeconds` 减去 preStop 钩子的 sleep）。nginx 用其中除 5 秒以外的全部时间排空'
        '正在进行的请求，那 5 秒留给 uWSGI 和退出，容器在 SIGKILL 之前自行结束'
        '（[production.md](production.md#停止)）。'),
    'WORKER_CLASS': (
        '`sync`',
        '`sync`：每个 worker 线程一次处理一个请求。`gevent`：每个进'
         '程可同时保持数千个流、Server-Sent Events 和 WebSocke'
         't（[流式响应与实时通信](streaming.md)）。'),
    'UWSGI_PROCESSES': (
        '每个 CPU 1 个，至少 2 个；`gevent` 时为 1 个（自动计算）',
        'uWSGI worker 进程数。CPU 数取容器的配额（`--cpus`），而'
         '不是宿主机的核数。'),
    'UWSGI_THREADS': (
        '`32`；`gevent` 时为 1（自动计算）',
        '每个 uWSGI 进程的线程数（仅 `sync`）：每个进程最多同时处理的请求数；'
         '请求在计算时 ADAPTIVE_THREADS 会让同时运行的更少。每个打开的流占用一个线程。'),
    'ADAPTIVE_THREADS': (
        '`1`',
        '`1`（`sync`）：每个进程同时只运行它的请求按“单独运行时所需时间”折算实际用到的那么多个，'
        '再加上这个数的平方根（最多 UWSGI_THREADS 个）：等待型页面能用上每一个线程，需要计算的页面'
        '（在 Python 的锁内或锁外，包括密码哈希）每个进程大约两个；其余请求排队等待位置，只要还能'
        '按时得到回答（[production.md](production.md#自适应线程)）。'
        '`0`：始终使用全部线程。STICKY_CLIENTS=1 时关闭。'),
    'STICKY_CLIENTS': (
        '`gevent` 时为 `1`，`sync` 时为 `0`（自动计算）',
        '`1`：每个客户端（按它的地址，或受信任代理报告的地址）总是由同一个 uWSGI 进程服务，'
        '适合把状态保存在进程内存里的应用（登录、会话、Socket.IO）'
        '（[your-app.md](your-app.md#状态保存在单个进程里)）。`0`：任何空闲进程都可以服务。'),
    'WORKER_MAX_MEMORY': (
        '按容器内存上限给每个进程的公平份额；没有上限时为 `0`（关闭）（自动计算）',
        '常驻内存超过这个值的 worker 会被平稳替换：不再接收新请求，处理完手头的请求后由新的'
        ' worker 接替（[production.md](production.md#内存进程与线程)）。'),
    'WORKER_CONNECTIONS': (
        '`2000`',
        '仅 `gevent`：每个进程同时保持的请求、流和 WebSocket 数。'),
    'STREAM_IDLE_TIMEOUT': (
        '`120`',
        '仅 `gevent`：流或 WebSocket 可以多少秒不发送任何数据，超过即关闭（事件流正常结束，'
        'EventSource 会自动重连；其他流被截断，客户端看得出来）。'),
    'STREAM_MAX_DURATION': (
        '`3600`',
        '仅 `gevent`：事件流或 WebSocket 总共可以持续的秒数（`0`：不限制），到时正常结束，'
        '客户端重新连接。其他响应不受它限制。'),
    'NGINX_WORKER_PROCESSES': (
        '每个 CPU 1 个（自动计算）',
        'nginx worker 进程数（`auto`：与默认值相同）。'),
    'NGINX_WORKER_CONNECTIONS': (
        '合计 8192 个，由各 worker 分摊（自动计算）',
        '每个 nginx worker 可以持有的连接数（包括空闲连接和慢速连接）。'),
    'QUEUE_SIZE': (
        '每个 worker 线程 4 个，至少 64 个；`gevent` 时每个进程 64 个（自动计算）',
        '可以排队等待繁忙 uWSGI 的请求数；超出后，新请求立即得到带 `Retry-'
         'After` 的 503。'),
    'CONNECTIONS_PER_CLIENT': (
        'uWSGI 能同时处理的请求数加 `QUEUE_SIZE`（自动计算）',
        '单个客户端地址同时可以有多少个处理中的请求，带请求体的请求、静态文件和其他请求分'
         '开计数；超出后返回带 `Retry-After` 的 503。'),
    'CLIENT_STREAM_SHARE': (
        '`80`',
        '仅 `sync`：一个客户端地址最多可以用按它的速度发送的响应（流、Server-Sent Events、'
        'WebSocket）占用全部 worker 线程的百分之多少；超出的得到带 `Retry-After` 的 503'
        '（[production.md](production.md#慢读者与长开的流)）。'),
    'UPLOAD_SPACE': (
        '`RUNTIME_DIR` 所在文件系统的一半（自动计算）',
        '正在接收的请求体合计可占用的磁盘空间；见[上传与 /tmp](productio'
         'n.md#上传与-tmp)。'),
    'RESPONSE_SPACE': (
        '`RUNTIME_DIR` 所在文件系统的四分之一（自动计算）',
        '等待慢速客户端的响应合计可占用的磁盘空间；超出后，大的响应由它的 worker '
         '按客户端的速度发送（绝不会被截断）。见[慢速客户端与大文件下载](product'
         'ion.md#慢速客户端与大文件下载)。'),
    'URL_PREFIX': (
        '（空）',
        '应用在代理后面所处的路径（`/shop`）：`url_for`、重定向和静态文件'
         ' URL 都以它开头；可信代理发来的 `X-Forwarded-Prefix` '
         '优先（[production.md](production.md#在-url-前'
         '缀下提供服务)）。'),
    'STATIC_ENABLED': (
        '`1`',
        '`1`：nginx 从磁盘提供 `STATIC_URL`。`0`：这些 URL '
         '交给应用处理。'),
    'STATIC_URL': (
        'Flask 应用的 `static_url_path`，否则为 `/static`（自动计算）',
        'nginx 从 `STATIC_PATH` 提供文件的 URL 前缀。'),
    'STATIC_PATH': (
        'Flask 应用的 `static_folder`，否则为 `/app/static`（自动计算）',
        '静态文件目录。'),
    'STATIC_INDEX': (
        '`0`',
        '`1`：`/` 返回静态文件目录中的 `index.html`（tiangolo'
         ' 镜像中的设置）。'),
    'LOG_FORMAT': (
        '`text`',
        '日志格式：`text`（一行可读文本）或 `json`（stdout 上每个请求一个对象，'
        'stderr 的每一行也是 JSON 对象：见 [production.md](production.md#日志)）。'),
    'METRICS_PORT': (
        '（空：关闭）',
        'Prometheus 指标端口，路径 `/metrics`（请求、耗时、按原因的拒绝、worker、队列）：'
        '见 [production.md](production.md#指标)。空：关闭。'),
    'SHARE_PORT': (
        '`0`',
        '`0`：端口上已经有程序在监听时（宿主机网络下可能是另一个容器），启动拒绝（退出码 2）。'
        '`1`：nginx 和指标服务与本镜像的其他容器共用端口（`reuseport`），用于宿主机网络上的 '
        'start-first 更新（[swarm.md](swarm.md#在宿主机网络上)）；内核在它们之间分配连接。'),
    'TRUSTED_PROXIES': (
        '（空）',
        '可信代理：只相信它们发来的 `X-Forwarded-*` 请求头，也只有它们发来的其他代理请求头'
         '（`X-Script-Name` 等）才会到达应用。为空时：不相信任何人发来的这些请求头。'),
    'ALLOWED_HOSTS': (
        '（空）',
        '允许服务的主机名；其他任何 `Host` 都由 nginx 返回 400。为空时'
         '：接受任何主机名。'),
    'PRE_START_PATH': (
        '`/app/prestart.sh`',
        '服务器启动之前用 bash 运行的脚本，仅在它存在时运行（用于数据库迁移；沿用 '
         'tiangolo 镜像中的名字）。'),
    'WRITABLE_PATHS': (
        '（空）',
        '应用在代码旁边写入的路径（缓存目录、密钥文件），例如 `/app/.data/ '
         '/app/myapp/secret_key`（目录以 `/` 结尾）：每一个都通'
         '过镜像中由 `RUN python3 -m flaskbox writable`'
         ' 创建的符号链接保存在实例卷上（[your-app.md](your-app.m'
         'd#在代码旁边写入的应用)）。'),
    'FILE_VARS_IGNORE': (
        '（空）',
        '应用自己的、保存路径的 `*_FILE` 变量（如 `LOG_FILE`），保持原样：其他任何 `VAR_FILE` '
        '都会把文件内容作为 `VAR` 交给应用（[configuration.md](configuration.md#以文件提供的机密)）。'),
    'ENTRYPOINT_QUIET_LOGS': (
        '`0`',
        '`1` 关闭入口脚本的信息日志；错误总会输出。'),
    'DEBUG_RELOADER': (
        '`inotify`',
        '调试模式：`inotify` 根据文件事件重启；`poll` 每 0.5 秒检查'
         '一次变化（Docker Desktop）。'),
    'DEBUG_HOST': (
        '宿主机网络（`--network host`）上为 `127.0.0.1`，否则为 `0.0.0.0`（自动计算）',
        '调试模式：开发服务器监听的地址。在宿主机网络上，除非设为 `0.0.0.0`，它只在本机可达；'
        '在容器自己的网络里，必须是 `0.0.0.0`，`-p` 才能连到它（[develop.md](develop.md#谁能访问调试器)）。'),
    'INSTALL_ON_START': (
        '`0`',
        '调试模式：`1` 在启动时安装 `/app/requirements.txt` '
         '和 `/app/requirements_os.txt`（[develop.md'
         '](develop.md#启动时安装软件包install_on_start1)）'
         '。'),
    'TLS_CERT': (
        '（空）',
        '证书（PEM，后接中间证书）：与 `TLS_KEY` 一起设置时，nginx 在 `PORT` 之外的 '
        '`TLS_PORT` 上提供 HTTPS 和 HTTP/2；收到 SIGHUP 时重新读取'
        '（[production.md](production.md#https-与-http2)）。'),
    'TLS_KEY': (
        '（空）',
        '证书的私钥（PEM，不加密）；与 `TLS_CERT` 一起设置。'),
    'TLS_PORT': (
        '`443`',
        '设置了 `TLS_CERT` 和 `TLS_KEY` 时，nginx 提供 HTTPS 的端口。'),
    'TLS_REDIRECT': (
        '`0`',
        '`1`：明文 HTTP 请求得到指向 HTTPS 的 308 重定向，健康检查（`/-/healthy`、'
        '`/-/alive`）和来自 `TRUSTED_PROXIES` 的请求除外。'),
    'COMPRESS_APP_RESPONSES': (
        '`1`',
        '`1`：应用的文本响应在客户端要求时经 gzip 压缩，HTTP 和 HTTPS 都是。`0`：只压缩静态文件，'
        '用于含有机密又回显输入的页面（BREACH：[production.md](production.md#压缩)）。'),
    'HSTS_MAX_AGE': (
        '`31536000`',
        '只在 HTTPS 响应上发送 `Strict-Transport-Security: max-age=...`（应用自己的头'
        '优先）；`0`：不发送。'),
}
