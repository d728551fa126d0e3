"""The file names today's bundlers really write, for the fingerprinted names'
rule (nginx-static.conf; tests/test_fingerprinted_names.py), and names of
files that are not fingerprinted, which must stay revalidated.

Produced on 2026-11-29 (issue 80) from one tiny project, outside the
repository, with each bundler installed from npm: index.js imports
style.css, util.js and logo.png and import()s lazy.js; style.css uses
demo.woff2 and logo.png; the two binaries are fixed bytes (Python's
random.Random(80)), so every build writes the same names. Node 20.20.
And privacyIDEA 3.14's own, from its wheel.
"""

# Each bundler's own output, as it named the files, with how it was run.
KEPT = {
    # vite 8.4.0 (Rolldown), its defaults, no manifest: `vite build proj`.
    "vite": ["assets/demo-DfA0nUqv.woff2", "assets/index-DsfHo9hE.js", "assets/index-tLWN6qIE.css"],
    # rollup 4.68.8: output.entryFileNames '[name]-[hash].js' (Vite's), chunks
    # and assets by Rollup's defaults; the CSS and images emitted as assets.
    "rollup": ["assets/demo-DfA0nUqv.woff2", "assets/style-CgXYdLwy.css", "lazy-DDIhDDqS.js"],
    # esbuild 0.28.2: --bundle --splitting --format=esm
    # --entry-names='[name]-[hash]' --loader:.png=file --loader:.woff2=file.
    "esbuild": ["demo-L23SC6WA.woff2", "index-HV36TPDB.css", "index-P5YMKMC7.js", "lazy-PYYVD3XG.js",
                "logo-7HDVSPAD.png"],
    # webpack 5.113.0 (webpack-cli 7.3.1, mini-css-extract-plugin 2.10.2),
    # mode production, as its caching guide: filename '[name].[contenthash].js',
    # chunkFilename '[id].[contenthash].js', CSS '[name].[contenthash].css',
    # images and fonts as asset/resource by its default name, [hash][ext].
    "webpack": ["430.4ef84a0345228585d7c9.js", "e2281c4a428e8b982442.png", "ed571cb991ef69a2c0e2.woff2",
                "main.910b4de9f9bab92e72f6.css", "main.f2da32465ba89421d14b.js"],
    # The same, as create-react-app and Superset: [contenthash:8], with .chunk
    # for split chunks, assets as media/[name].[hash:8][ext].
    "webpack [contenthash:8]": ["430.4ef84a03.chunk.js", "main.121c3587.js", "main.5232870f.css",
                                "media/demo.ed571cb9.woff2", "media/logo.e2281c4a.png"],
    # parcel 2.16.4, its defaults: `parcel build proj/index.html --no-cache`.
    "parcel": ["demo.d44903df.woff2", "lazy.13123aa6.js", "logo.d4dbeff7.png", "proj.61643e9e.css",
               "proj.7c61e34b.js"],
    # @angular/cli 21.2.28, @angular/build 21.2.27 (the application builder,
    # esbuild: privacyIDEA's UI is built so), outputHashing "all", zone.js
    # polyfills, a lazy component: `ng build`.
    "angular": ["chunk-MEQ572S4.js", "chunk-YXFP4GRU.js", "main-6INY5NWB.js", "media/demo-L23SC6WA.woff2",
                "media/logo-7HDVSPAD.png", "polyfills-V37PQWRA.js", "styles-YUZVC5HM.css"],
    # @angular-devkit/build-angular 21.2.9, the older browser builder
    # (webpack), the same project: `ng build`.
    "angular webpack": ["829.14a45ab81e33d8aa.js", "demo.5eb7217ac001027a.woff2", "logo.f9c7593c03f4f497.png",
                        "main.4fc15d2eb7733d31.js", "polyfills.3ec15393edfd9966.js",
                        "runtime.5fc93290bb20f720.js", "styles.352d73c8b35ff134.css"],
    # Not our project: privacyIDEA 3.14's own web UI as its wheel on PyPI
    # ships it (privacyidea/static/dist/privacyidea-webui/browser/<locale>/),
    # built by Angular's application builder.
    "privacyidea 3.14": [
        "chunk-7QR3CMJY.js", "chunk-C3AELRXL.js", "chunk-HSO6YE6G.js", "chunk-WJWSDOG4.js",
        "chunk-XHKWLJ5F.js", "main-6BOTAYD6.js", "media/Roboto-Bold-74TWGET6.ttf",
        "media/Roboto-VariableFont_wdth,wght-TQJTUEE4.ttf", "media/material-icons-outlined-7BWLPMFK.woff2",
        "media/material-icons-round-WEHMTW23.woff2", "media/material-icons-sharp-U4OLFP3G.woff",
        "media/material-icons-two-tone-LCGWGE2N.woff"],
}

# Hashed names of the same builds that the rule leaves to revalidation (a
# 304), as it must to never take a word for a hash: three lower-case letters
# in a row (doak, ruo) or three digits (379), as a word or a number has; in
# esbuild's upper case, no digit, as an upper-case word. Measured on 2,000
# names each: kept 74 % of Rollup's, 74 % of Vite 8's, 80 % of esbuild's,
# every webpack, Parcel and Angular webpack name with a letter in its hex;
# 14 of privacyIDEA 3.14's 20.
REVALIDATED_HASHES = ["assets/lazy-Cc1doakM.js", "assets/logo-D379vU2j.png", "main-D8NSTruo.js",
                      "styles-SGOHDGVZ.css", "media/material-icons-JLIDJUWE.woff",
                      "media/material-icons-LEZCGFVT.woff2", "media/material-icons-outlined-PCUTWIDZ.woff",
                      "media/material-icons-round-SLOHZIXU.woff", "media/material-icons-sharp-HCCYMPXE.woff2"]

# Not fingerprinted: a file changed in place keeps its name. The issue's
# list; the names looser rules took for hashes among the 500,000 file names
# of the machine they were tried on (Python's and npm's packages, /usr/share,
# a toolchain's docs), kept so that no later rule does; and more of the
# same kinds (a font's weight, an image's size, an id).
NOT_FINGERPRINTED = [
    "jquery-3.7.1.min.js", "bootstrap-5.3.3.css", "app-v2.js", "vendor-bundle.js", "logo-DARK.svg",
    "font-awesome-4.7.0.css", "README-FIRST.txt", "Roboto-Regular.woff2", "select2-4.0.13.js",
    "moment-with-locales.js", "LICENSE-APACHE.txt", "CHANGELOG-20240101.md", "Roboto-SemiBold.woff2",
    "Inter-Variable.woff2", "Montserrat-Light300.woff2", "og-1200x630.png", "screenshot-1024x768.png",
    "BSD-2-Clause.txt", "abi-armeabi-v6-Clang.cmake", "Traktor-Kontrol-Z1-Mixer.conf",
    "Audient-iD4-0009.conf", "TUBITAK_Kamu_SM_SSL_Kok_Sertifikasi_-_Surum_1.crt", "struct.Ipv6Addr.html",
    "type.AtomicU8.html", "report.20240115.css", "cafebabe12.png", "app.css", "icons-material.css",
    "5b6bd808-0399-4ee6-9395-344688761dfa.json", "3f2a9c1b4e5d6f708192a3b4c5d6e7f8.png",
    "apple-touch-icon-180x180.png", "fa-solid-900.woff2", "roboto-v30-latin-700.woff2",
    # privacyIDEA 3.14's own, beside its UI's bundles (static/, static_old/).
    "FIDO-U2F-Security-Key-444x444.png", "angular-ui-router.js", "bootstrap-theme.css", "logo-text.png",
    "full-logo-white-background.jpg", "privacyIDEA1.png", "config.resolvers.http.advanced.html",
]
