"""Settings shared by every environment, read from the environment (django-environ).

The embedded default needs no server: SQLite under var/, artifacts under var/.
Scale-out sets DATABASE_URL / CELERY_BROKER_URL; see docs/deployment.md.
"""
from importlib.util import find_spec
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"
VAR_DIR.mkdir(exist_ok=True)  # the embedded default keeps its SQLite files and artifacts here

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

# --- Core -------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
# A development key is fine for the embedded default; production.py demands a real one.
SECRET_KEY = env("DJANGO_SECRET_KEY", default="dev-insecure-change-me-0123456789abcdef")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI / ReDoc assets served locally: /api/docs/ works offline
    "marketplace",
    "valuation",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # 413 before a body larger than any upload is read (config/upload_limits.py).
    "config.upload_limits.RequestSizeLimitMiddleware",
    # Static files from the app process itself (runserver --noreload, the Docker image): no CDN, DEBUG off.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database ---------------------------------------------------------------
# SQLite file by default (no server); DATABASE_URL=postgres://... for scale-out.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"].setdefault("OPTIONS", {}).update({
        # Several processes (web workers, Celery, CLI) share the file: wait up to 30 s for a lock, never fail.
        "timeout": 30,
        # WAL: readers never block the writer nor it them; NORMAL sync is durable across process crashes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        # A write transaction takes the lock when it starts, so it waits (busy timeout) instead of failing
        # with "database is locked" when another process committed after it read.
        "transaction_mode": "IMMEDIATE",
    })
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Keep a connection per web thread for a minute instead of opening one (and running the PRAGMAs) per request.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))

# --- Cache: shared by every process on the machine (page fragments, sign-in limits) ----------------
# A directory by default, so the web workers of `make serve` render a finished round once between them
# and count sign-in attempts together; CACHE_URL=redis://host:6379/1 when there are several machines.
CACHES = {"default": env.cache("CACHE_URL", default=f"filecache://{VAR_DIR / 'cache'}")}
# A file or in-memory cache forgets a third of its entries at random once it holds MAX_ENTRIES (Django's default,
# 300, is a few hundred failed sign-ins): a guesser could flush the sign-in counts by making new ones. Redis has no
# such cap.
if CACHES["default"]["BACKEND"].endswith(("FileBasedCache", "LocMemCache")):
    CACHES["default"].setdefault("OPTIONS", {}).setdefault("MAX_ENTRIES", 10_000)

# --- Auth -------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Failed sign-ins allowed per window, counted together at the web, admin and token doors (config/ratelimit.py).
LOGIN_FAILURE_LIMITS = {
    # one account from one address: refuses only that address for that account, so no one else is locked out
    "account_address": env("LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", default="10/15m"),
    # one address, any accounts: a sprayer; accounts already signed in from the address are exempt
    "address": env("LOGIN_FAILURES_PER_ADDRESS", default="50/15m"),
    # one account from every address: the ceiling on a distributed guesser (new addresses refused, known ones slowed)
    "account": env("LOGIN_FAILURES_PER_ACCOUNT", default="30/1h"),
}
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", default=90)  # how long a signed-in address stays known
LOGIN_SLOW_SECONDS = env.int("LOGIN_SLOW_SECONDS", default=60)  # over the ceiling: a known address tries this often
API_TOKEN_DAYS = env.int("API_TOKEN_DAYS", default=30)  # an API token is refused (401) this long after it was issued
# Accounts created per client address per window (config/ratelimit.py, signup_rate_limited).
SIGNUP_LIMIT = env("SIGNUPS_PER_ADDRESS", default="5/h")
RATELIMIT_CLIENT_IP_HEADER = env("RATELIMIT_CLIENT_IP_HEADER", default="")  # e.g. HTTP_X_REAL_IP behind a proxy
LOGIN_URL = "marketplace:login"
LOGIN_REDIRECT_URL = "marketplace:home"
LOGOUT_REDIRECT_URL = "marketplace:login"

# --- I18N / static ------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# plotly.min.js comes from the installed plotly package (the version the charts were built with), so
# the dashboards need no CDN: /static/plotly/plotly.min.js.
PLOTLY_JS_DIR = Path(find_spec("plotly").submodule_search_locations[0]) / "package_data"
STATICFILES_DIRS = [BASE_DIR / "static", ("plotly", PLOTLY_JS_DIR)]
STATIC_ROOT = VAR_DIR / "staticfiles"  # `collectstatic` target for a front server; may stay empty
STATIC_ROOT.mkdir(exist_ok=True)
# Serve straight from the finders: no collectstatic step in `make demo` or the image.
WHITENOISE_USE_FINDERS = True

# --- REST API -----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "config.tokens.ExpiringTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=None),  # proxies in front: the client is in X-Forwarded-For
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Preference-data marketplace API",
    "DESCRIPTION": "Upload DPO preference pairs, run Shapley valuation rounds, pay owners.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Swagger UI and ReDoc from drf-spectacular-sidecar's static files, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Several models have a `status`: one named enum each, so the schema names them apart.
    "ENUM_NAME_OVERRIDES": {
        "ContributionStatusEnum": "marketplace.models.Contribution.Status",
        "RoundStatusEnum": "valuation.models.ValuationRound.Status",
        "PayoutStatusEnum": "valuation.models.Payout.Status",
        "FidelityStatusEnum": "valuation.models.FidelityReport.Status",
    },
}

# --- Uploads ------------------------------------------------------------------
# Limits a user can hit get a row-numbered message; see marketplace/parsing.py.
UPLOAD_MAX_BYTES = env.int("UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)
UPLOAD_MAX_ROWS = env.int("UPLOAD_MAX_ROWS", default=100_000)
UPLOAD_MAX_FIELD_CHARS = env.int("UPLOAD_MAX_FIELD_CHARS", default=8_000)
UPLOAD_MAX_REPORTED_ERRORS = 100
# Non-file form fields (Django's DATA_UPLOAD_MAX_MEMORY_SIZE); files up to this size stay in memory, larger
# ones are spooled to a temporary file — and neither is read past UPLOAD_MAX_BYTES (config/upload_limits.py).
# Near-duplicate refusal (marketplace/neardup.py): Jaccard similarity of canonical shingles at or above
# which a pair copies a held one (prompt and chosen answer both) or contaminates an eval prompt.
NEAR_DUP_PROMPT_THRESHOLD = env.float("NEAR_DUP_PROMPT_THRESHOLD", default=0.85)
NEAR_DUP_RESPONSE_THRESHOLD = env.float("NEAR_DUP_RESPONSE_THRESHOLD", default=0.8)
NEAR_DUP_EVAL_PROMPT_THRESHOLD = env.float("NEAR_DUP_EVAL_PROMPT_THRESHOLD", default=0.88)
# The persisted index's bands follow these two: change them only with `manage.py index_near_duplicates --rebuild`.
NEAR_DUP_NUM_PERM = 128
NEAR_DUP_LSH_THRESHOLD = 0.7
# Per owner, web and API (marketplace/upload_rate.py): uploads per window, and rows submitted per day.
UPLOAD_RATE = env("UPLOAD_RATE", default="20/h")
UPLOAD_ROWS_PER_DAY = env.int("UPLOAD_ROWS_PER_DAY", default=300_000)
# A refused upload stores this many of its reasons; an owner keeps this many refusal records (counts of
# all refusals are in RefusalTally).
REFUSAL_STORED_ROW_ERRORS = env.int("REFUSAL_STORED_ROW_ERRORS", default=20)
REFUSAL_RECORDS_KEPT = env.int("REFUSAL_RECORDS_KEPT", default=20)
# "Possible probing" (shown to staff only): over the last PROBING_WINDOW_DAYS, an owner had at least
# PROBING_MIN_ROWS rows refused as copies of held data, or at least PROBING_MIN_UPLOADS uploads of which
# PROBING_REFUSED_SHARE or more were refused.
PROBING_WINDOW_DAYS = env.int("PROBING_WINDOW_DAYS", default=7)
PROBING_MIN_ROWS = env.int("PROBING_MIN_ROWS", default=50)
PROBING_MIN_UPLOADS = env.int("PROBING_MIN_UPLOADS", default=5)
PROBING_REFUSED_SHARE = env.float("PROBING_REFUSED_SHARE", default=0.5)
DATA_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
FILE_UPLOAD_HANDLERS = [
    "config.upload_limits.SizeLimitedUploadHandler",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Valuation ----------------------------------------------------------------
ARTIFACTS_DIR = Path(env("ARTIFACTS_DIR", default=str(VAR_DIR / "artifacts")))  # shared by every worker
VALUATION_DEVICE = env("VALUATION_DEVICE", default="cpu")  # this worker's: cpu | cuda
# Compute precision new rounds record (float32 | bfloat16 | float16, the last on cuda only): it changes
# the trained weights, so it is part of the owner-model and score cache keys and every worker follows it.
VALUATION_DTYPE = env("VALUATION_DTYPE", default="float32")
# Modules whose callables a `reward` round may name as judges (importing a module runs its code, so a
# web/API request must not name arbitrary ones). Reward-model directories are always allowed.
JUDGE_MODULES = env.list("JUDGE_MODULES", default=["valuation.engine.synthetic", "judges"])
# Pair embeddings of the data-quality stage; unset = ARTIFACTS_DIR/representations (read at use, so tests follow it).
REPRESENTATIONS_DIR = env("REPRESENTATIONS_DIR", default=None)
# Semantic screen at round time (valuation/stages/screening.py): a pair is near-identical to an eval pair or
# another owner's pair when the cosine of their base-model pair vectors exceeds SCREEN_PAIR_THRESHOLD, and an
# owner with more than SCREEN_SHARE_THRESHOLD of their pairs so is flagged (approval then needs staff to
# acknowledge them). Recorded in each round's config at creation; bench/similarity_screen.py measures them.
SCREEN_PAIR_THRESHOLD = env.float("SCREEN_PAIR_THRESHOLD", default=0.95)
SCREEN_SHARE_THRESHOLD = env.float("SCREEN_SHARE_THRESHOLD", default=0.15)

# --- Celery -------------------------------------------------------------------
# SQLAlchemy transport on a SQLite file: a broker with no server to install.
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}")
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=None)  # none needed: rounds join in the database
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the message for another
CELERY_TASK_REJECT_ON_WORKER_LOST = True  # ... also when only its pool process dies (OOM killer)
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # fine-tunes are long: take one at a time
# Processes per worker; each fine-tune already uses VALUATION_TORCH_THREADS cores (or a whole GPU).
CELERY_WORKER_CONCURRENCY = env.int("CELERY_WORKER_CONCURRENCY", default=1)
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", default="celery")  # one per deployment on a shared broker
# Redis re-delivers an unacknowledged message after this long; a unit still running elsewhere then
# waits for its lease, so it may be shorter than a fine-tune, but not much. (Redis only: the SQLAlchemy
# transport hands its options to create_engine, which refuses this one.)
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600)}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://", "sentinel://")) else {})
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- Logging ------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "marketplace": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
        "valuation": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    },
}
