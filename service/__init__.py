"""ShopRank online scoring runtime: inference, index and store seams, pipelines and the HTTP API."""
