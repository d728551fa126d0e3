/* a lazy chunk: 7f3a9c1be02d4e55.chunk.js, webpack's [contenthash].chunk.js */
